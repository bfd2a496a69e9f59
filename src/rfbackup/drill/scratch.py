"""Everything a drill creates is registered here first, and removed at the end, whatever
happened: a failed check, an exception, SIGINT or SIGTERM.

Removal runs newest first with SIGINT/SIGTERM held back (a second Ctrl-C must not leave half
the scratch targets behind); a signal that arrived meanwhile is delivered afterwards.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from rfbackup.interrupts import deferred
from rfbackup.logs import log


@dataclass
class Scratch:
    keep: bool = False  # --keep: leave the targets for a person, and list them
    _items: list[tuple[str, Callable[[], None]]] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    def add(self, what: str, remove: Callable[[], None]) -> None:
        """Register ``what`` (e.g. "database rfbackup_drill_X on host:5432") BEFORE creating
        it; ``remove`` must accept that it may not exist (yet)."""
        self._items.append((what, remove))

    def close(self) -> None:
        with deferred():
            while self._items:
                what, remove = self._items.pop()
                if self.keep:
                    self.kept.append(what)
                    log.warning("--keep: left %s", what)
                    continue
                try:
                    remove()
                    log.info("removed %s", what)
                except Exception as exc:
                    self.problems.append(f"could not remove {what}: {exc}")
                    log.error("could not remove %s: %s", what, exc)
