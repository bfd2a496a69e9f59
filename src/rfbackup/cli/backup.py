from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

import typer

from rfbackup.cli import artifacts
from rfbackup.cli.common import EnvOption, JsonOption, RepoOption, print_json, settings

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
    from rfbackup.engine import job
    from rfbackup.sources.postgres.logical import PostgresLogical

    s = settings(env, repo)
    result = job.run(s, PostgresLogical.from_settings(s, dump_format, compression))
    if as_json:
        m = result.manifest
        print_json({**result.to_dict(), "database": m.subject, "tables": len(m.row_counts)})
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
    from rfbackup.engine import job
    from rfbackup.pitr.basebackup import PostgresBase, describe

    s = settings(env, repo)
    manifest = job.run(s, PostgresBase(s)).manifest
    if as_json:
        print_json(describe(manifest))
    else:
        typer.echo(manifest.name)


@app.command("config")
def config(
    git_repo: Annotated[
        Path,
        typer.Option(
            "--git-repo",
            metavar="PATH",
            help="The configuration repository (holds infrastructure/).",
        ),
    ],
    with_cluster: Annotated[
        bool,
        typer.Option(
            "--with-cluster",
            help="First commit the cluster's ConfigMaps and age-encrypted Secrets ([mode] "
            "namespace) on the branch rfbackup/cluster-state.",
        ),
    ] = False,
    env: EnvOption = None,
    repo: RepoOption = None,
    as_json: JsonOption = False,
) -> None:
    """Bundle every ref of the configuration git repository, if any changed since the last
    bundle (otherwise do nothing). Stored under config/ and never pruned.

    Restore with `rfbackup restore config BUNDLE DEST`.
    """
    from rfbackup.sources.config.service import backup as run

    result = run(settings(env, repo), git_repo, with_cluster)
    if as_json:
        print_json(result)
    elif result["changed"]:
        typer.echo(result["name"])
    else:
        typer.echo(f"unchanged since {result['name']}", err=True)


app.command("artifacts")(artifacts.backup)


@app.command("redis")
def redis(
    env: EnvOption = None,
    repo: RepoOption = None,
    verify_load: Annotated[
        bool,
        typer.Option(
            "--verify-load",
            help="Also load the snapshot into a throwaway redis-server and compare DBSIZE per "
            "database and a sample of keys with the live server before it counts.",
        ),
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """Snapshot the Redis named by REDIS_URL (or REDIS_HOST / REDIS_PORT / REDIS_PASSWORD).

    Fetches the RDB over the replication protocol, as redis-cli --rdb does (BGSAVE and the
    server's file when SYNC is refused), and checks it as it streams: CRC64, RDB version,
    key counts per database against INFO keyspace. Writes redis/YYYYMMDD_HHMMSS.rdb.zst and
    its manifest, last.
    """
    from rfbackup.engine import job
    from rfbackup.sources.redis import RedisSource

    s = settings(env, repo)
    result = job.run(s, RedisSource.from_settings(s, verify_load=verify_load))
    if as_json:
        section = result.manifest.source
        print_json(
            {
                **result.to_dict(),
                "method": section.get("method"),
                "keys": section.get("keys"),
                "verify_load": section.get("verify_load"),
            }
        )
    else:
        typer.echo(result.manifest.name)
