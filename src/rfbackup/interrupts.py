"""Holding SIGINT and SIGTERM back for a moment, so a partial write is never created without
the code that removes it on interruption being in place."""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager

_SIGNALS = {signal.SIGINT, signal.SIGTERM}


def leave_to_main_thread() -> None:
    """Called first in every helper thread: SIGINT and SIGTERM then reach the main thread.

    A signal the kernel hands to a helper thread is still handled in the main thread, but
    only once that thread wakes up: a main thread blocked reading a stalled pg_dump would
    ignore Ctrl-C, and :func:`deferred` could not hold the signal back."""
    signal.pthread_sigmask(signal.SIG_BLOCK, _SIGNALS)


@contextmanager
def deferred() -> Iterator[None]:
    """SIGINT and SIGTERM that arrive inside the block are delivered as it ends (as the
    usual KeyboardInterrupt or Interrupted). Threads started inside keep them blocked, so
    the main thread is the one that receives them."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    old = signal.pthread_sigmask(signal.SIG_BLOCK, _SIGNALS)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)
