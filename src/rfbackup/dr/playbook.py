"""The shape of every DR playbook: a declarative list of steps, each with a precondition, an
action, a check and (where one exists) an undo; run in order with an audit log.

* ``--dry-run`` prints every step with the exact API call or command, and does nothing.
* A run records each step's start and result in the repository (rfbackup.dr.audit).
* ``--resume`` continues the newest unfinished run: its done steps are skipped (their facts,
  e.g. the backup chosen, are reused), the failed step runs again.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from rfbackup.dr.audit import AuditLog, runs
from rfbackup.errors import RfBackupError

if TYPE_CHECKING:
    from rfbackup.config import Settings


@dataclass
class Context:
    settings: Settings
    options: dict[str, Any]  # the command line's choices
    state: dict[str, Any] = field(default_factory=dict)  # facts steps hand to later ones
    kube_api: Any = None  # a kubernetes ApiClient (tests), else built from the settings


@dataclass(frozen=True)
class Step:
    name: str
    title: str
    plan: Callable[[Context], str]  # the exact call or command, for --dry-run
    action: Callable[[Context], dict[str, Any]]  # returns facts (kept for later steps)
    precondition: Callable[[Context], None] | None = None  # raises to refuse
    check: Callable[[Context], str] | None = None  # raises when the action did not work
    undo: str | None = None  # how to undo it, for the person running it


@dataclass
class Outcome:
    playbook: str
    run_id: str
    resumed: bool
    steps: list[dict[str, Any]] = field(default_factory=list)
    manual: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def describe(steps: list[Step], ctx: Context) -> list[dict[str, Any]]:
    return [{"step": s.name, "title": s.title, "call": s.plan(ctx), "undo": s.undo} for s in steps]


def run(
    name: str,
    steps: list[Step],
    ctx: Context,
    subject: dict[str, str],
    resume: bool,
    announce: Callable[[str], None] = lambda line: None,
) -> Outcome:
    repo = ctx.settings.open_repository()
    done: dict[str, dict[str, Any]] = {}
    run_id = None
    if resume:
        for candidate in reversed(runs(repo, name)):
            events = AuditLog(repo, name, candidate, subject).events()
            if any(e["result"] == "finished" for e in events):
                break  # the newest run finished: nothing to resume
            if all(e.get(k) == v for e in events for k, v in subject.items()):
                run_id = candidate
                done = {e["step"]: e["facts"] for e in events if e["result"] == "done"}
                break
    resumed = run_id is not None
    run_id = run_id or datetime.now(UTC).strftime("%Y%m%d_%H%M%S")
    audit = AuditLog(repo, name, run_id, subject)
    outcome = Outcome(name, run_id, resumed)
    audit.record("run", "resumed" if resumed else "started", ", ".join(done))
    for step in steps:
        if step.name in done:
            ctx.state.update(done[step.name])
            outcome.steps.append({"step": step.name, "result": "skipped (done before)"})
            announce(f"[skip] {step.title}: done in an earlier run")
            continue
        announce(f"[....] {step.title}: {step.plan(ctx)}")
        audit.record(step.name, "started", step.plan(ctx))
        try:
            if step.precondition is not None:
                step.precondition(ctx)
            facts = step.action(ctx)
            ctx.state.update(facts)
            detail = step.check(ctx) if step.check is not None else ""
        except Exception as exc:
            message = str(exc) or type(exc).__name__
            audit.record(step.name, "failed", message)
            hint = f"; to undo it: {step.undo}" if step.undo else ""
            text = (
                f"{name}: step '{step.name}' failed: {message} (fix the cause, then re-run "
                f"with --resume to continue from this step{hint})"
            )
            if not isinstance(exc, RfBackupError):
                raise RfBackupError(text) from None
            exc.message = text
            exc.args = (text,)
            raise
        except BaseException:
            audit.record(step.name, "failed", "interrupted")
            raise
        audit.record(step.name, "done", detail, **facts)
        outcome.steps.append({"step": step.name, "result": "done", "detail": detail, **facts})
        announce(f"[done] {step.title}" + (f": {detail}" if detail else ""))
    audit.record("run", "finished")
    return outcome
