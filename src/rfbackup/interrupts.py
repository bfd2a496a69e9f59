"""Holding SIGINT and SIGTERM back for a moment, so a partial write is never created without
the code that removes it on interruption being in place."""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager

_SIGNALS = {signal.SIGINT, signal.SIGTERM}


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
