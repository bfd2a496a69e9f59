"""The drill's components: one check module each in ``rfbackup.drill.checks``, registered on
import. A new component (Redis, artifacts...) is one new module there, nothing else::

    from rfbackup.drill.registry import register

    class RedisCheck:
        component = "redis"
        order = 30
        def skip_reason(self, ctx): return None   # or why it cannot run here
        def run(self, ctx, result): ...           # restore into scratch, check, measure

    register(RedisCheck())
"""

from __future__ import annotations

import importlib
import pkgutil
from typing import TYPE_CHECKING, Protocol

from rfbackup.errors import ConfigError

if TYPE_CHECKING:
    from rfbackup.drill.context import Context
    from rfbackup.drill.model import CheckResult


class Check(Protocol):
    component: str  # the name `--component` takes, and the metrics' component label
    order: int  # run order: the database first, like a rebuild

    def skip_reason(self, ctx: Context) -> str | None:
        """None when the check can run; else why not (no backup of this kind, not configured)."""
        ...

    def run(self, ctx: Context, result: CheckResult) -> None:
        """Restore the newest good backup into scratch targets (registered with ``ctx.scratch``
        for cleanup), record findings and RTO/RPO in ``result``. Raising fails the component."""
        ...


_CHECKS: dict[str, Check] = {}


def register(check: Check) -> None:
    _CHECKS[check.component] = check


def available() -> dict[str, Check]:
    """Every registered check (each module of rfbackup.drill.checks imported first), in order."""
    import rfbackup.drill.checks

    for info in pkgutil.iter_modules(rfbackup.drill.checks.__path__):
        importlib.import_module(f"rfbackup.drill.checks.{info.name}")
    return dict(sorted(_CHECKS.items(), key=lambda kv: (kv[1].order, kv[0])))


def select(names: list[str] | None) -> list[Check]:
    checks = available()
    if not names:
        return list(checks.values())
    unknown = [n for n in names if n not in checks]
    if unknown:
        raise ConfigError(
            f"unknown drill component {', '.join(unknown)}: choose from {', '.join(checks)}"
        )
    return [c for name, c in checks.items() if name in names]
