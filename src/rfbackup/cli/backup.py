from __future__ import annotations

from typing import Annotated, Literal

import typer

from rfbackup.cli.common import EnvOption, JsonOption, RepoOption, print_json, reported, settings

app = typer.Typer(help="Take a backup.", no_args_is_help=True)


@app.command("postgres")
def postgres(
    env: EnvOption = None,
    repo: RepoOption = None,
    dump_format: Annotated[
        Literal["plain", "custom"],
        typer.Option(
            "--format",
            help="plain: SQL, restorable with gunzip -c | psql. "
            "custom: pg_dump's archive, for parallel or selective pg_restore.",
        ),
    ] = "plain",
    compression: Annotated[
        Literal["gzip", "zstd"] | None,
        typer.Option(
            "--compression",
            help="gzip writes .gz, zstd writes .zst (faster, smaller).",
            show_default="gzip",
        ),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Back up the PostgreSQL database named by PGDATABASE / DATABASE_URL.

    Writes backup_YYYYMMDD_HHMMSS.sql.gz (production: backup_prod_...) and its manifest,
    which is written last: a backup without a manifest never happened.
    """
    from rfbackup.backup import run_postgres_backup

    s = settings(env, repo)
    with reported(s, "postgres", "backup", s.postgres_target().dbname or "") as run:
        result = run_postgres_backup(s, dump_format, compression)
        m = result.manifest
        run.stored(m.data.key, m.data.raw_bytes, m.data.stored_bytes, m.sha256)
    if as_json:
        print_json(result.to_dict())
    else:
        typer.echo(result.manifest.name)


@app.command("base")
def base(
    env: EnvOption = None,
    repo: RepoOption = None,
    as_json: JsonOption = False,
) -> None:
    """Physical base backup of the whole cluster, for point-in-time recovery (`rfbackup pitr`).

    Streams pg_basebackup (tar, WAL included) through zstd [and age] into base/ of the
    repository. The manifest, written last, records LSNs, timeline and system identifier;
    it is written only once the WAL the backup needs is in the archive (wal/).
    """
    from rfbackup.pitr.basebackup import backup_base, describe

    s = settings(env, repo)
    target = s.postgres_target()
    cluster = f"{target.host or 'local'}:{target.port or 5432}"
    with reported(s, "postgres-base", "backup", cluster) as run:
        manifest = backup_base(s)
        d = manifest.data
        run.stored(d.key, d.raw_bytes, d.stored_bytes, manifest.sha256)
    if as_json:
        print_json(describe(manifest))
    else:
        typer.echo(manifest.name)
