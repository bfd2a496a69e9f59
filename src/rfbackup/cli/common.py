"""Options shared by commands, and the one way a command loads its settings."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Annotated

import typer

from rfbackup.cli.output import print_json as print_json  # re-exported
from rfbackup.config_lean import ENV_ALIASES, ENVIRONMENTS, env_name
from rfbackup.errors import Aborted
from rfbackup.report import Kind, Run, RunReport, reporting

if TYPE_CHECKING:
    from rfbackup.config import Settings


def parse_env(text: str) -> str:
    """``--env``: a full name, or prod / stage / dev."""
    name = env_name(text)
    if name is None:
        known = ", ".join(ENVIRONMENTS)
        aliases = ", ".join(f"{k}={v}" for k, v in ENV_ALIASES.items())
        raise typer.BadParameter(f"{text!r} is not one of {known} (or {aliases})")
    return name


EnvOption = Annotated[
    str | None,
    typer.Option(
        "--env",
        metavar="ENV",
        parser=parse_env,
        help="development, staging or production (or dev, stage, prod). "
        "Default: RFBACKUP_ENV, else development.",
        show_default=False,
    ),
]
RepoOption = Annotated[
    str | None,
    typer.Option(
        "--repo",
        metavar="URL",
        help="Repository: a folder or s3://bucket/prefix. Overrides RFBACKUP_REPOSITORY and "
        "RFBACKUP_BACKUP_DIR.",
        show_default=False,
    ),
]
ComponentOption = Annotated[
    list[str] | None,
    typer.Option(
        "--component",
        "-c",
        metavar="NAME",
        help="Only this component (postgres, postgres-base, redis...); repeatable.",
        show_default=False,
    ),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON on stdout.")]


def settings(env: str | None = None, repo: str | None = None) -> Settings:
    from rfbackup import config, logs

    s = config.load(env=env, repository=repo)
    logs.setup(s.log_file)
    return s


def deliver_report(s: Settings, report: RunReport) -> None:
    """Hand a finished run's report to the configured metrics delivery (if any)."""
    if s.metrics.enabled:
        from rfbackup.ops.metrics import deliver

        deliver(report, s.metrics)


def _is_failure(exc: BaseException) -> bool:
    if isinstance(exc, typer.Exit):
        return bool(exc.exit_code != 0)
    return True


@contextmanager
def reported(s: Settings, component: str, kind: Kind, what: str = "") -> Iterator[Run]:
    """Wrap one job: its RunReport (success or failure) goes to metrics; errors re-raise."""
    lineage = "/".join(p for p in (s.env.value, component, what) if p)
    with reporting(
        component,
        s.env.value,
        kind,
        lineage,
        deliver=lambda report: deliver_report(s, report),
        failure_is=_is_failure,
    ) as run:
        yield run


def confirmer(yes: bool) -> Callable[[str], bool]:
    """Ask on a terminal; without one, refuse unless --yes."""

    def confirm(question: str) -> bool:
        if yes:
            return True
        if not sys.stdin.isatty():
            raise Aborted(f"{question} -- confirmation needed: re-run with --yes")
        return typer.confirm(question, default=False, err=True)

    return confirm
