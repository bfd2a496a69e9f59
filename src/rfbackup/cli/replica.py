"""``rfbackup replica check|sync``: is every backup also in the other region?"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from rfbackup.cli.common import EnvOption, JsonOption, print_json, reported, settings
from rfbackup.errors import ConfigError, IntegrityError

if TYPE_CHECKING:
    from rfbackup.config import Settings
    from rfbackup.storage import Repository

app = typer.Typer(help="Compare or repair the cross-region replica.", no_args_is_help=True)


def _repos(env: str | None) -> tuple[Settings, Repository, Repository]:
    s = settings(env)
    replica: Repository | None = s.open_replica()
    if replica is None:
        raise ConfigError("no replica configured: set RFBACKUP_REPLICA__URL")
    return s, s.open_repository(), replica


DeepOption = Annotated[
    bool,
    typer.Option(
        "--deep",
        help="Also read every backup's data on the replica and check its sha256 "
        "(reads the whole replica).",
    ),
]


@app.command("check")
def check(deep: DeepOption = False, env: EnvOption = None, as_json: JsonOption = False) -> None:
    """Compare primary and replica: every component's backups by key, size and the
    manifests' sha256, and every archived WAL file; exit 6 if anything is missing."""
    from rfbackup.replication import compare

    s, primary, replica = _repos(env)
    with reported(s, "postgres", "check", "replica") as run:
        result = compare(primary, replica, deep)
        missing = sum(d.problem != "extra" for d in result.differences)
        run.report.extra["missing_objects"] = missing  # the check ran: missing is a gauge
    if as_json:
        print_json(
            {
                "primary": primary.url,
                "replica": replica.url,
                "checked": result.checked,
                "ok": result.ok,
                "differences": [d.to_dict() for d in result.differences],
            }
        )
    else:
        for d in result.differences:
            typer.echo(f"{d.problem:<9} {d.name}  {d.detail}")
        typer.echo(
            f"{result.checked} backups and WAL files checked, "
            f"{sum(d.problem != 'extra' for d in result.differences)} missing or different",
            err=True,
        )
    if not result.ok:
        raise IntegrityError("the replica is missing backups: run `rfbackup replica sync`")


@app.command("sync")
def sync(
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Show what would be copied; copy nothing.")
    ] = False,
    deep: DeepOption = False,
    env: EnvOption = None,
    as_json: JsonOption = False,
) -> None:
    """Copy what the replica lacks, WAL included (and upload backups waiting in the
    fallback folder)."""
    from rfbackup.replication import sync as run_sync
    from rfbackup.replication import upload_pending

    s, primary, replica = _repos(env)
    fallback = s.open_fallback()
    uploaded = [] if fallback is None or dry_run else upload_pending(fallback, primary, replica)
    found = run_sync(primary, replica, dry_run, deep)
    copied = [d.to_dict() for d in found.differences if d.problem != "extra"]
    if as_json:
        print_json({"dry_run": dry_run, "uploaded_from_fallback": uploaded, "copied": copied})
    else:
        verb = "would copy" if dry_run else "copied"
        for d in copied:
            typer.echo(f"{verb} {d['name']} ({d['problem']})")
        typer.echo(
            f"{len(copied)} backup(s) {verb}, {len(uploaded)} uploaded from fallback", err=True
        )
