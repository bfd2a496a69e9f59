"""The recovered server: its owner, starting it, waiting for recovery to end, and what it
reported (promoted, the last replayed transaction, the timeline)."""

from __future__ import annotations

import os
import pwd
import re
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from rfbackup.errors import ConfigError, RestoreError
from rfbackup.progress import Reporter

LOG_NAME = "rfbackup-pitr.log"
SIGNAL = "recovery.signal"


def owner_of(name: str | None) -> pwd.struct_passwd:
    if name is None:
        name = "postgres" if os.geteuid() == 0 else pwd.getpwuid(os.geteuid()).pw_name
    try:
        return pwd.getpwnam(name)
    except KeyError:
        raise ConfigError(f"no such user {name!r} to own the data directory") from None


def chown_tree(root: Path, user: pwd.struct_passwd) -> None:
    if os.geteuid() != 0:
        return
    for dirpath, _dirnames, filenames in os.walk(root):
        os.chown(dirpath, user.pw_uid, user.pw_gid)
        for name in filenames:
            os.lchown(os.path.join(dirpath, name), user.pw_uid, user.pw_gid)
    os.chmod(root, 0o700)


# -- recovery settings ----------------------------------------------------------------------


# -- starting and watching the server -------------------------------------------------------


@dataclass
class Outcome:
    data_dir: str
    backup: str
    target: str
    files: int = 0
    bytes: int = 0
    started: bool = False
    promoted: bool = False
    port: int | None = None
    timeline: int | None = None
    stopped_at: str | None = None  # PostgreSQL's "recovery stopping ..." line
    last_transaction: str | None = None
    redo_done_at: str | None = None
    log_file: str | None = None
    moved_aside: str | None = None
    restored_wal: int = 0
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)
    newest_wal: str | None = None  # the newest archived segment on the recovery's path
    newest_wal_archived_at: str | None = None  # when it was archived (repository time)

    def to_dict(self) -> dict[str, object]:
        return dict(self.__dict__)


def as_owner(cmd: list[str], user: pwd.struct_passwd) -> list[str]:
    if os.geteuid() == 0 and user.pw_uid != 0:
        return ["runuser", "-u", user.pw_name, "--", *cmd]
    return cmd


def start_and_wait(
    data_dir: Path, user: pwd.struct_passwd, bin_dir: Path | None, major: int, outcome: Outcome
) -> None:
    """Start the server, wait for recovery to reach its target and promote, and read from
    the server log where recovery stopped."""
    from rfbackup.sources.postgres import tools

    log_file = data_dir / LOG_NAME
    outcome.log_file = str(log_file)
    pg_ctl = tools.find("pg_ctl", bin_dir, major)
    # logging_collector=off for this start only, so recovery's messages land in our log.
    cmd = [pg_ctl, "-D", str(data_dir), "-l", str(log_file), "-o", "-c logging_collector=off"]
    proc = subprocess.run(as_owner([*cmd, "-W", "start"], user), capture_output=True, text=True)
    if proc.returncode != 0:
        raise RestoreError(f"pg_ctl start failed: {(proc.stderr or proc.stdout).strip()}")
    outcome.started = True
    signal = data_dir / SIGNAL
    with Reporter("replaying WAL", None, interval=10.0) as progress:
        while signal.exists():
            time.sleep(0.3)
            text = log_file.read_text(errors="replace") if log_file.exists() else ""
            count = text.count("restored log file")
            if count > outcome.restored_wal:
                progress.advance(count - outcome.restored_wal)
                outcome.restored_wal = count
            fatal = re.search(r"^.*(FATAL|PANIC):.*$", text, re.M)
            if (fatal or not _running(data_dir)) and signal.exists():
                line = fatal.group(0) if fatal else "the server exited"
                ours = re.findall(r"^rfbackup wal-fetch: error: (.*)$", text, re.M)
                if ours:
                    line = f"wal-fetch: {ours[-1]}"
                raise RestoreError(
                    f"recovery failed: {line.split(':', 3)[-1].strip()} (log: {log_file})"
                )
    _wait_ready(log_file, data_dir)
    outcome.promoted = True
    _read_outcome(log_file.read_text(errors="replace"), outcome)


def _running(data_dir: Path) -> bool:
    pid_file = data_dir / "postmaster.pid"
    try:
        pid = int(pid_file.read_text().split("\n", 1)[0])
    except (OSError, ValueError):
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _wait_ready(log_file: Path, data_dir: Path, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        text = log_file.read_text(errors="replace")
        if "database system is ready to accept connections" in text:
            return
        if not _running(data_dir):
            raise RestoreError(f"the server stopped after recovery (log: {log_file})")
        time.sleep(0.2)
    raise RestoreError(f"the server did not accept connections after promotion (log: {log_file})")


def _read_outcome(text: str, outcome: Outcome) -> None:
    def last(pattern: str) -> str | None:
        found = re.findall(pattern, text, re.M)
        return found[-1].strip() if found else None

    outcome.stopped_at = last(r"LOG:\s+(recovery stopping .*)$")
    outcome.last_transaction = last(r"last completed transaction was at log time (.*)$")
    outcome.redo_done_at = last(r"redo done at (\S+)")
    tli = last(r"selected new timeline ID: (\d+)")
    outcome.timeline = int(tli) if tli else None


# -- the whole command ----------------------------------------------------------------------
