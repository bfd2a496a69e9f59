"""Progress for long jobs: a live bar on a terminal, a log line every 15 s otherwise (cron)."""

from __future__ import annotations

import sys
import time
from types import TracebackType

from rfbackup.logs import log


def human_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"


class Reporter:
    """``with Reporter("dumping", total) as p: p.advance(n)``"""

    def __init__(self, label: str, total: int | None, interval: float = 15.0) -> None:
        self.label = label
        self.total = total or None
        self.done = 0
        self.interval = interval
        self._started = time.monotonic()
        self._last = self._started
        self._bar: object | None = None
        self._task: object | None = None

    def __enter__(self) -> Reporter:
        if sys.stderr.isatty():
            from rich.console import Console
            from rich.progress import (
                BarColumn,
                DownloadColumn,
                Progress,
                ProgressColumn,
                Task,
                TaskProgressColumn,
                TextColumn,
                TimeElapsedColumn,
            )
            from rich.text import Text

            class Speed(ProgressColumn):
                def render(self, task: Task) -> Text:
                    speed = task.finished_speed or task.speed
                    shown = f"{human_bytes(speed)}/s" if speed else "?"
                    return Text(shown, style="progress.data.speed")

            # MiB like the log lines; the finished bar stays, at 100%.
            bar = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                TaskProgressColumn(),
                DownloadColumn(binary_units=True),
                Speed(),
                TimeElapsedColumn(),
                console=Console(file=sys.stderr),
            )
            bar.start()
            self._task = bar.add_task(self.label, total=self.total)
            self._bar = bar
        return self

    def relabel(self, label: str) -> None:
        """Change the text before the bar (e.g. a file count); log lines use it too."""
        self.label = label
        if self._bar is not None:
            self._bar.update(self._task, description=label)  # type: ignore[attr-defined]

    def advance(self, n: int) -> None:
        self.done += n
        if self._bar is not None:
            self._bar.update(self._task, advance=n)  # type: ignore[attr-defined]
            return
        now = time.monotonic()
        if now - self._last >= self.interval:
            self._last = now
            rate = self.done / max(now - self._started, 1e-9)
            of = f" of ~{human_bytes(self.total)}" if self.total else ""
            log.info("%s: %s%s (%s/s)", self.label, human_bytes(self.done), of, human_bytes(rate))

    def __exit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._bar is not None:
            if t is None:  # done: the total was an estimate, the bar ends at what was done
                self._bar.update(self._task, total=self.done, completed=self.done)  # type: ignore[attr-defined]
            self._bar.stop()  # type: ignore[attr-defined]
