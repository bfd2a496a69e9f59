"""``rfbackup restore COMPONENT ...``: one command per component; ``restore FILE`` is
short for ``restore postgres FILE`` (the runbook's form, see cli/legacy.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from rfbackup.cli import artifacts
from rfbackup.cli.common import EnvOption, JsonOption, RepoOption, confirmer, print_json, settings

app = typer.Typer(
    help="Restore a backup. `rfbackup restore FILE` restores a PostgreSQL backup.",
    no_args_is_help=True,
)


@app.command("postgres")
def postgres(
    backup_file: Annotated[str, typer.Argument(help="A backup file path, or a backup name.")],
    target_db: Annotated[
        str | None,
        typer.Option(
            "--target-db",
            help="Restore into this NEW database beside the current one, without swapping.",
            show_default=False,
        ),
    ] = None,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
    jobs: Annotated[
        int | None,
        typer.Option(
            "--jobs",
            "-j",
            min=1,
            help="pg_restore jobs for custom-format backups.",
            show_default=False,
        ),
    ] = None,
    allow_unverified: Annotated[
        bool,
        typer.Option(
            "--allow-unverified",
            help="Restore a file that has no manifest (after a full decompression test; row "
            "counts cannot be checked), or whose manifest is unsigned or not signed by a "
            "trusted key. Prints a loud warning.",
        ),
    ] = False,
    force_target: Annotated[
        bool,
        typer.Option(
            "--force-target",
            help="Replace the database even though the backup is of another database.",
        ),
    ] = False,
    allow_empty: Annotated[
        bool,
        typer.Option(
            "--allow-empty",
            help="Let a backup that restores an empty database replace one that holds data.",
        ),
    ] = False,
    no_db_properties: Annotated[
        bool,
        typer.Option(
            "--no-db-properties",
            help="Do not give the new database the backup's owner, ACL, settings, comment "
            "and connection limit.",
        ),
    ] = False,
    env: EnvOption = None,
    repo: RepoOption = None,
    as_json: JsonOption = False,
) -> None:
    """Restore a PostgreSQL backup: verify, load into a new database, check, swap.

    `rfbackup restore FILE` is short for `rfbackup restore postgres FILE`.

    The sha256 is checked before any database is touched. The current database is replaced
    only after the restored one matches the manifest's row counts, and is kept under a
    dated name (DB_pre_restore_YYYYMMDD_HHMMSS).
    """
    from rfbackup.restore import restore_postgres

    result = restore_postgres(
        settings(env, repo),
        backup_file,
        target_db=target_db,
        confirm=confirmer(yes),
        allow_unverified=allow_unverified,
        jobs=jobs,
        force_target=force_target,
        allow_empty=allow_empty,
        db_properties=not no_db_properties,
    )
    if as_json:
        print_json(result)
    else:
        kept = result["previous_kept_as"]
        typer.echo(
            f"restored {result['backup']} into {result['database']} "
            f"({result['tables']} tables, {result['rows']} rows, "
            + ("row counts verified)" if result["verified"] else "UNVERIFIED: no manifest)")
            + ("; database properties restored" if result["db_properties"] else "")
            + (f"; previous database kept as {kept}" if kept else "")
        )


@app.command("config")
def config(
    bundle: Annotated[str, typer.Argument(help="A config backup: a name, key or path.")],
    dest: Annotated[Path, typer.Argument(help="A new folder to clone it into.")],
    env: EnvOption = None,
    repo: RepoOption = None,
    as_json: JsonOption = False,
) -> None:
    """Clone a configuration bundle into DEST, after checking its sha256, its signature and
    `git bundle verify` (its refs must be those recorded in the manifest)."""
    from rfbackup.sources.config.service import restore

    result = restore(settings(env, repo), bundle, dest)
    if as_json:
        print_json(result)
    else:
        typer.echo(
            f"cloned {result['backup']} ({result['refs']} refs) into {result['destination']}"
        )


app.command("artifacts")(artifacts.restore)


@app.command("redis")
def redis(
    snapshot: Annotated[str, typer.Argument(help="A snapshot name, key or file path.")],
    files: Annotated[
        bool,
        typer.Option(
            "--files",
            help="The Redis runs here and its files are yours: stop it, move dump.rdb and the "
            "AOF aside (kept), put the snapshot in place, start it. Default: replay every key "
            "by RESTORE, which works for remote and managed Redis too.",
        ),
    ] = False,
    start_command: Annotated[
        str | None,
        typer.Option(
            "--start-command",
            metavar="CMD",
            help="With --files: how to start the server again (split like a shell, never run "
            "by one; redis-server arguments are appended). Default: redis-server CONFIG_FILE "
            "--daemonize yes, with the file the server runs from.",
            show_default=False,
        ),
    ] = None,
    db: Annotated[
        list[int] | None,
        typer.Option("--db", min=0, help="Only this database; repeatable.", show_default=False),
    ] = None,
    match: Annotated[
        str | None,
        typer.Option(
            "--match",
            metavar="PATTERN",
            help="Only keys matching this Redis glob (user:*): merges into the current data.",
            show_default=False,
        ),
    ] = None,
    replace: Annotated[
        bool,
        typer.Option("--replace", help="Overwrite keys the target already holds."),
    ] = False,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Verify the snapshot and say what would happen.")
    ] = False,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
    env: EnvOption = None,
    repo: RepoOption = None,
    as_json: JsonOption = False,
) -> None:
    """Restore a Redis snapshot into the Redis named by REDIS_URL / REDIS_HOST.

    The snapshot's sha256 (and signature) is checked, then its CRC64 and key counts, before
    the target is touched. A non-empty target is refused unless --replace; keys that only
    the target holds are never deleted.
    """
    from rfbackup.sources.redis.service import restore_snapshot

    result = restore_snapshot(
        settings(env, repo),
        snapshot,
        files=files,
        start_command=start_command,
        dbs=db,
        match=match,
        replace=replace,
        dry_run=dry_run,
        confirm=confirmer(yes),
    )
    if as_json:
        print_json(result)
    elif dry_run:
        typer.echo(f"dry run: {result['plan']}")
        for db_name, n in result.get("target_keys_now", {}).items():
            typer.echo(f"  the target's db {db_name} holds {n} keys now")
    else:
        done = result["result"]
        counts = done.get("keys") or done.get("restored") or {}
        listed = ", ".join(f"db {k}: {v}" for k, v in counts.items())
        typer.echo(f"restored {result['snapshot']} into redis {result['target']} ({listed})")
