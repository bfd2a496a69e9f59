"""How a failed command ends: its message on stderr (or in the log), and its exit code."""

from __future__ import annotations

import signal
import sys
from datetime import UTC, datetime
from types import FrameType

from rfbackup.errors import Interrupted, RfBackupError


def install_signal_handlers() -> None:
    """SIGTERM raises Interrupted, and SIGINT KeyboardInterrupt, in every command. Our own
    SIGINT handler too: started with SIGINT ignored (nohup, `cmd &` in a script), Python would
    inherit "ignore" and Ctrl-C would never stop a run."""
    signal.signal(signal.SIGTERM, _on_sigterm)
    signal.signal(signal.SIGINT, signal.default_int_handler)


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise Interrupted(signum)


def report_error(exc: RfBackupError, verbose: bool = False) -> int:
    """Print ``exc`` (with ``verbose``, also the causes it hides); returns its exit code."""
    from rfbackup.logs import is_set_up, log

    lines = [exc.message]
    if verbose:
        lines += [f"  caused by {type(c).__name__}: {c}" for c in causes(exc)]
    for line in lines:
        if is_set_up():
            log.error("%s", line)
        else:
            stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
            print(f"{stamp} ERROR {line}", file=sys.stderr)
    return exc.exit_code


def causes(exc: BaseException) -> list[BaseException]:
    """The exceptions behind ``exc``, nearest first: its cause, or the one it was raised
    while handling (which ``raise ... from None`` hides but keeps)."""
    found: list[BaseException] = []
    current = exc.__cause__ or exc.__context__
    while current is not None and current not in found and len(found) < 10:
        found.append(current)
        current = current.__cause__ or current.__context__
    return found
