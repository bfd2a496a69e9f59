"""``rfbackup status``: per component, how fresh the backups are; non-zero when one is stale."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

import typer

from rfbackup.cli.common import EnvOption, JsonOption, RepoOption, print_json, settings
from rfbackup.errors import ConfigError, Stale


def _when(value: datetime | None) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%MZ") if value else "-"


def status(
    now: Annotated[
        str | None,
        typer.Option("--now", help="Judge freshness at this time (ISO 8601), e.g. to rehearse."),
    ] = None,
    env: EnvOption = None,
    repo: RepoOption = None,
    as_json: JsonOption = False,
) -> None:
    """Last good backup, age, next run, recoverable-to time, replica and drill per component.

    Exits 11 when any component is past its freshness threshold (RFBACKUP_FRESHNESS__*), so
    it can serve as a check.
    """
    from rfbackup.ops.status import age_text, collect

    at = datetime.now(UTC)
    if now is not None:
        try:
            at = datetime.fromisoformat(now.replace("Z", "+00:00"))
        except ValueError:
            raise ConfigError(f"--now: not an ISO 8601 time: {now!r}") from None
        if at.tzinfo is None:
            at = at.astimezone()
    result = collect(settings(env, repo), at)
    if as_json:
        print_json(result.to_dict())
    else:
        typer.echo(f"{result.environment} backups in {result.repository} at {_when(at)}")
        header = ("COMPONENT", "STATE", "LAST SUCCESS", "AGE", "NEXT RUN", "RECOVERABLE TO")
        rows = [header]
        for c in result.components:
            nxt = c.next_run or "-"
            if nxt[:1].isdigit():
                nxt = _when(datetime.fromisoformat(nxt))
            rows.append(
                (
                    c.component,
                    c.state,
                    _when(c.last_success),
                    age_text(c.age_seconds),
                    nxt,
                    _when(c.recoverable_to),
                )
            )
        widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
        for r in rows:
            typer.echo("  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)).rstrip())
        for c in result.components:
            extra = f"replica: {c.replica}; last drill: {c.last_drill}"
            typer.echo(f"{c.component}: {extra}" + (f"; {c.detail}" if c.detail else ""))
        typer.echo(
            f"incident: newest consistent point {_when(result.consistent_point)} "
            f"({result.consistent_note})"
        )
    stale = [c.component for c in result.components if c.stale]
    if stale:
        raise Stale(f"past the freshness threshold: {', '.join(stale)}")
