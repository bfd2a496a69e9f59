"""``rfbackup check`` (is the repository protected?) and ``rfbackup unhide``."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

import typer

from rfbackup.cli.common import EnvOption, JsonOption, RepoOption, print_json, settings
from rfbackup.errors import NotImmutable


def check(
    immutable: Annotated[
        bool,
        typer.Option(
            "--immutable",
            help="Also sample stored objects and verify each is locked (S3 Object Lock) at "
            "least as long as its component's keep-days.",
        ),
    ] = False,
    sample: Annotated[
        int,
        typer.Option("--sample", min=0, help="How many objects --immutable checks (0: all)."),
    ] = 200,
    replica: Annotated[
        bool, typer.Option("--replica", help="Check the replica bucket instead.")
    ] = False,
    env: EnvOption = None,
    repo: RepoOption = None,
    as_json: JsonOption = False,
) -> None:
    """Check that backups cannot be deleted: bucket versioning, Object Lock, retention.

    In production a bucket without Object Lock fails (exit 14); elsewhere it is reported. With --immutable any object whose lock is missing or too short fails (exit 14). See docs/immutability.md.
    """  # noqa: E501
    from rfbackup.config import Environment
    from rfbackup.errors import ConfigError
    from rfbackup.immutability import bucket_report, check_objects

    s = settings(env, repo)
    repository = s.open_replica() if replica else s.open_repository()
    if repository is None:
        raise ConfigError("no replica configured (RFBACKUP_REPLICA__URL)")
    wanted = repository.retention_policy()
    report = bucket_report(repository, wanted)
    if immutable and report.protection is not None:
        check_objects(repository, wanted or s.lock_policy().retention(), report, sample)
    if as_json:
        print_json(report.to_dict())
    else:
        _show(report)
    must_lock = immutable or s.env is Environment.production
    if must_lock and not report.ok:
        what = "; ".join(report.problems)
        if report.findings:
            what = (what + "; " if what else "") + (
                f"{len(report.findings)} object(s) without the retention they need, "
                f"e.g. {report.findings[0].key}: {report.findings[0].problem}"
            )
        raise NotImmutable(f"{repository.url} is not immutable: {what}")


def _show(report: object) -> None:
    from rfbackup.cli.tables import print_rows
    from rfbackup.immutability import ImmutabilityReport

    assert isinstance(report, ImmutabilityReport)
    p = report.protection
    typer.echo(f"repository   {report.url}")
    typer.echo(f"versioning   {p.versioning if p else '-'}")
    typer.echo(f"object lock  {'enabled' if p and p.object_lock else 'not enabled'}")
    typer.echo(f"mode         {report.mode}")
    for problem in report.problems:
        typer.echo(f"problem      {problem}")
    if report.sampled:
        typer.echo(f"checked      {report.sampled} of {report.objects} object(s)")
    if report.findings:
        rows = [
            [f.key, f.problem, f.needed_until.strftime("%Y-%m-%d %H:%M:%S")]
            for f in report.findings
        ]
        print_rows(["KEY", "PROBLEM", "NEEDED UNTIL (UTC)"], rows)


def unhide(
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Only show what would be brought back.")
    ] = False,
    replica: Annotated[
        bool, typer.Option("--replica", help="Work on the replica bucket instead.")
    ] = False,
    env: EnvOption = None,
    repo: RepoOption = None,
    as_json: JsonOption = False,
) -> None:
    """Bring back backups a stolen key deleted or overwrote in a locked bucket.

    Object Lock keeps every locked version; a delete only hides it behind a delete marker, an overwrite behind a newer version. This copies each locked original back on top (locked as before). Nothing is deleted.
    """  # noqa: E501
    from rfbackup.errors import ConfigError
    from rfbackup.immutability import unhide as run

    s = settings(env, repo)
    repository = s.open_replica() if replica else s.open_repository()
    if repository is None:
        raise ConfigError("no replica configured (RFBACKUP_REPLICA__URL)")
    done = run(repository, datetime.now(UTC), dry_run)
    if as_json:
        print_json({"dry_run": dry_run, "restored": [u.to_dict() for u in done]})
        return
    verb = "would bring back" if dry_run else "brought back"
    for u in done:
        until = u.locked_until.strftime("%Y-%m-%d %H:%M:%S")
        typer.echo(f"{verb} {u.key} (hidden by a {u.hidden_by}; locked until {until} UTC)")
    typer.echo(f"{len(done)} object(s) {verb}", err=True)
