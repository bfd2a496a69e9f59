"""Running the PostgreSQL client programs: finding them, draining stderr, reporting failure.

Connection details reach the programs only through their environment (``PGHOST``...,
``PGPASSWORD``), never through argv, where any local user could read them.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import threading
from collections import deque
from pathlib import Path
from typing import IO

from rfbackup import interrupts
from rfbackup.errors import ConfigError

DEBIAN_LAYOUT = Path("/usr/lib/postgresql")


def find(program: str, bin_dir: Path | None, major: int | None = None) -> str:
    """The program in ``bin_dir`` (RFBACKUP_PG_BIN) if given. Otherwise, for server programs
    that must match a data directory's ``major`` version, Debian's
    /usr/lib/postgresql/MAJOR/bin first; then PATH; then the newest Debian version."""
    if bin_dir is not None:
        path = bin_dir / program
        if not path.exists():
            raise ConfigError(f"{program} not found in RFBACKUP_PG_BIN ({bin_dir})")
        if not os.access(path, os.X_OK):
            raise ConfigError(f"cannot run {path}: it is not executable")
        return str(path)
    if major is not None and (DEBIAN_LAYOUT / str(major) / "bin" / program).exists():
        return str(DEBIAN_LAYOUT / str(major) / "bin" / program)
    found = shutil.which(program)
    if found is None:
        versions = sorted(
            (p for p in DEBIAN_LAYOUT.glob(f"*/bin/{program}") if p.parts[-3].isdigit()),
            key=lambda p: int(p.parts[-3]),
        )
        if versions:
            return str(versions[-1])
        raise ConfigError(
            f"{program} not found: install the PostgreSQL tools or set RFBACKUP_PG_BIN"
        )
    return found


def version(path: str) -> str:
    try:
        out = subprocess.run(
            [path, "--version"], capture_output=True, text=True, check=False, timeout=30
        )
    except subprocess.TimeoutExpired:
        raise ConfigError(f"{path} --version did not answer within 30 s") from None
    return out.stdout.strip()


class StderrTail:
    """Drains a child's stderr on a thread, keeping the last lines for the error message."""

    def __init__(self, stream: IO[bytes], keep: int = 20) -> None:
        self.lines: deque[str] = deque(maxlen=keep)
        self.first_error: str | None = None  # the cause; later lines are often its echo
        self._thread = threading.Thread(target=self._drain, args=(stream,), daemon=True)
        self._thread.start()

    def _drain(self, stream: IO[bytes]) -> None:
        interrupts.leave_to_main_thread()
        for raw in stream:
            line = raw.decode("utf-8", "replace").rstrip()
            if line:
                self.lines.append(line)
                if self.first_error is None:
                    self.first_error = first_error([line])
        stream.close()

    def join(self) -> None:
        self._thread.join(timeout=10)

    @property
    def last(self) -> str:
        self.join()
        errors = [ln for ln in self.lines if "error" in ln.lower() or "fatal" in ln.lower()]
        return (errors or list(self.lines) or ["no error output"])[-1]


def first_error(lines: list[str]) -> str | None:
    """The first line that carries a server ``ERROR:`` (psql / pg_restore report the failing
    statement's error first, then context such as ``Command was: …``)."""
    for line in lines:
        if "ERROR:" in line or "FATAL:" in line:
            return line.strip()
    return None


def stop(proc: subprocess.Popen[bytes]) -> None:
    """Terminate a child and reap it."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    for stream in (proc.stdin, proc.stdout):
        if stream is not None:
            with contextlib.suppress(OSError):
                stream.close()
