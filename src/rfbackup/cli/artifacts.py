"""``rfbackup backup artifacts``, ``rfbackup restore artifacts`` and ``rfbackup artifacts ...``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from rfbackup.cli.common import EnvOption, JsonOption, RepoOption, print_json, reported, settings

app = typer.Typer(
    help="Artifact volume snapshots: set up, list, check, prune (docs/artifacts.md).",
    no_args_is_help=True,
)


def backup(
    paths: Annotated[
        list[Path] | None,
        typer.Argument(help="Folders or files. Default: artifacts.paths of the configuration."),
    ] = None,
    env: EnvOption = None,
    repo: RepoOption = None,
    as_json: JsonOption = False,
) -> None:
    """Snapshot artifact folders: deduplicated, compressed, encrypted to the age recipients.

    Needs only the age public recipients and the writer key (RFBACKUP_ARTIFACTS__KEY_FILE):
    the backup job cannot read any backup. Unchanged files (same size, mtime, ctime, inode)
    are not read again. A file that cannot be read makes the snapshot partial and the exit
    non-zero (4).
    """
    from rfbackup.errors import SourceError
    from rfbackup.sources.artifacts import service

    s = settings(env, repo)
    with reported(s, "artifacts", "backup", "volumes") as run:
        snap = service.backup(s, list(paths or []))
        st = snap.stats
        run.stored(f"artifacts/snapshots/{snap.id}", st["bytes"], st["stored_bytes"], None)
        if snap.partial:
            message = f"snapshot {snap.id[:8]} is partial: {len(snap.errors)} path(s) unreadable"
            if as_json:
                print_json(snap.to_dict())
            raise SourceError(message)
    if as_json:
        print_json(snap.to_dict())
    else:
        typer.echo(snap.id)


def restore(
    snapshot: Annotated[
        str, typer.Argument(help="A snapshot id (or its first characters), or latest.")
    ],
    dest: Annotated[Path, typer.Argument(help="Folder to restore into (empty, or --overwrite).")],
    path: Annotated[
        str | None,
        typer.Option("--path", metavar="SUBPATH", help="Restore only this path of the snapshot."),
    ] = None,
    overwrite: Annotated[
        bool, typer.Option("--overwrite", help="Restore into a folder that is not empty.")
    ] = False,
    env: EnvOption = None,
    repo: RepoOption = None,
    as_json: JsonOption = False,
) -> None:
    """Restore an artifact snapshot (or a path of it) into DEST.

    Restores modes, mtimes, symlinks, hardlinks, empty folders, and ownership when run as
    root. Every chunk is checked before it is written; a damaged one fails its file, the
    others are still restored, and the exit is 6. Needs RFBACKUP_ENCRYPTION__IDENTITY_FILE.
    """
    from rfbackup.sources.artifacts import reader, service
    from rfbackup.sources.artifacts.restore import check_destination, raise_if_failed
    from rfbackup.sources.artifacts.restore import restore as run_restore

    s = settings(env, repo)
    check_destination(dest, overwrite)
    st = service.reader(s)
    snap = reader.resolve(st, snapshot)
    result = run_restore(st, snap, dest, path, overwrite)
    if as_json:
        print_json(result.to_dict())
    else:
        typer.echo(f"restored {result.files} files, {result.dirs} folders into {dest}")
    raise_if_failed(result)


@app.command("init")
def init(env: EnvOption = None, repo: RepoOption = None, as_json: JsonOption = False) -> None:
    """Set up the artifacts area of the repository and write the writer key file.

    The key file (RFBACKUP_ARTIFACTS__KEY_FILE, created 0600, never overwritten) goes to the
    backup job; a copy encrypted to the age recipients is stored in the repository.
    """
    from rfbackup.sources.artifacts import service

    repo_id, path = service.init(settings(env, repo))
    if as_json:
        print_json({"repository": repo_id, "key_file": str(path)})
    else:
        typer.echo(f"artifacts repository {repo_id}; writer key in {path}")


@app.command("list")
def list_snapshots(
    env: EnvOption = None, repo: RepoOption = None, as_json: JsonOption = False
) -> None:
    """List the snapshots, newest first: time, id, files, size, size added, partial."""
    from rfbackup.progress import human_bytes
    from rfbackup.sources.artifacts import service
    from rfbackup.sources.artifacts.tree import read_snapshot, snapshot_keys

    st = service.reader(settings(env, repo))
    snaps = sorted((read_snapshot(st, k) for k in snapshot_keys(st)), key=lambda x: -x.time)
    if as_json:
        print_json([x.to_dict() for x in snaps])
        return
    for x in snaps:
        d = x.to_dict()
        flag = " partial" if x.partial else ""
        size = human_bytes(x.stats.get("bytes", 0))
        added = human_bytes(x.stats.get("stored_bytes", 0))
        typer.echo(
            f"{d['time']:%Y-%m-%d %H:%M:%S}  {x.id[:8]}  {x.stats.get('files', 0):>8} files  "
            f"{size:>10}  +{added}{flag}"
        )


@app.command("check")
def check(
    read_data_subset: Annotated[
        str | None,
        typer.Option(
            "--read-data-subset",
            metavar="SHARE",
            help="Also read, decrypt and hash this share of the packs: 5% ... 100%.",
        ),
    ] = None,
    env: EnvOption = None,
    repo: RepoOption = None,
    as_json: JsonOption = False,
) -> None:
    """Check the snapshots, trees, indexes and packs; with a subset, the data too.

    Exit 0: clean. Exit 6: something is damaged or missing; each problem is printed, with
    the files a damaged chunk belongs to.
    """
    from rfbackup.errors import IntegrityError
    from rfbackup.sources.artifacts import service
    from rfbackup.sources.artifacts.check import parse_subset

    share = parse_subset(read_data_subset)
    s = settings(env, repo)
    with reported(s, "artifacts", "check", "volumes"):
        result = service.check(s, share)
        if as_json:
            print_json(result.to_dict())
        else:
            for problem in result.errors:
                typer.echo(f"error: {problem}", err=True)
            typer.echo(
                f"{result.snapshots} snapshots, {result.trees} trees, {result.chunks} chunks, "
                f"{result.packs} packs ({result.packs_read} read), "
                f"{result.unindexed_packs} unindexed: " + ("ok" if result.ok else "DAMAGED")
            )
        if not result.ok:
            raise IntegrityError(f"artifacts check found {len(result.errors)} problem(s)")


@app.command("prune")
def prune(
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Show what would go; delete nothing.")
    ] = False,
    keep_days: Annotated[
        int | None,
        typer.Option("--keep-days", help="Keep every snapshot this young.", show_default="90"),
    ] = None,
    keep_min: Annotated[
        int | None,
        typer.Option(
            "--keep-min", help="Always keep this many newest complete snapshots.", show_default="3"
        ),
    ] = None,
    keep_daily: Annotated[
        int, typer.Option("--keep-daily", help="Newest snapshot of each of N days.")
    ] = 0,
    keep_weekly: Annotated[
        int, typer.Option("--keep-weekly", help="Newest of each of N weeks.")
    ] = 0,
    keep_monthly: Annotated[
        int, typer.Option("--keep-monthly", help="Newest of each of N months.")
    ] = 0,
    env: EnvOption = None,
    repo: RepoOption = None,
    as_json: JsonOption = False,
) -> None:
    """Forget snapshots outside the retention, then delete the data only they used.

    Holds the repository lease (no backup runs meanwhile). A snapshot, index or tree that
    cannot be read stops it before anything is deleted (exit 6). Partial snapshots never
    count toward --keep-min.
    """
    from rfbackup.sources.artifacts import service
    from rfbackup.sources.artifacts.prune import Policy

    s = settings(env, repo)
    policy = Policy(
        keep_days=s.artifacts.keep_days if keep_days is None else keep_days,
        keep_min=s.artifacts.keep_min if keep_min is None else keep_min,
        keep_daily=keep_daily,
        keep_weekly=keep_weekly,
        keep_monthly=keep_monthly,
        grace_seconds=s.artifacts.prune_grace_hours * 3600,
    )
    with reported(s, "artifacts", "prune", "volumes"):
        result = service.prune(s, policy, dry_run)
    if as_json:
        print_json(result.to_dict())
        return
    verb = "would forget" if dry_run else "forgot"
    typer.echo(
        f"{verb} {len(result.forgotten)} snapshots, kept {len(result.kept)}; packs deleted "
        f"{result.packs_deleted}, repacked {result.packs_repacked}, unindexed removed "
        f"{result.unindexed_packs_deleted}"
    )
