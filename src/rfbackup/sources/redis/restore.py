"""Restore an RDB snapshot into a Redis whose files we control (the remote target, by
RESTORE, is :mod:`remote`).

Both check the snapshot (CRC64, structure, counts) while writing it to local disk, before
anything touches the target.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from rfbackup.errors import RestoreError
from rfbackup.sources.redis.check import RdbCheck, RdbSummary
from rfbackup.sources.redis.connection import client, keyspace, one_line_errors
from rfbackup.sources.redis.target import RedisTarget

CHUNK = 1 << 20


def write_checked(plaintext: IO[bytes], path: Path, *, durable: bool = True) -> RdbSummary:
    """Copy the snapshot to ``path`` (new, 0600) while checking it; removed when bad.
    ``durable=False`` skips the fsync: for a private scratch copy that this process reads
    back and deletes (a crash loses it either way; the check does not depend on it)."""
    check = RdbCheck("the Redis snapshot")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    try:
        with os.fdopen(fd, "wb") as out:
            while chunk := plaintext.read(CHUNK):
                check.feed(chunk)
                out.write(chunk)
            out.flush()
            if durable:
                os.fsync(out.fileno())
        return check.finish()
    except BaseException:
        check.abort()
        path.unlink(missing_ok=True)
        raise


# --- a Redis whose files we control ------------------------------------------------------


@dataclass
class LocalServer:
    """How to stop and start the Redis we restore into. ``start(extra_args)`` starts it
    (with non-secret overrides such as ``--appendonly no``) and returns once it is up;
    ``stop()`` defaults to ``SHUTDOWN NOSAVE`` and waiting for the port to close."""

    target: RedisTarget
    start: Callable[[list[str]], object]
    stop: Callable[[], None] | None = None


def restore_files(
    plaintext: IO[bytes], server: LocalServer, *, wait_seconds: float = 300.0
) -> dict[str, Any]:
    t = server.target
    c = client(t)
    with one_line_errors(t, "reading the server's configuration"):
        conf = {
            _text(k): _text(v)
            for k, v in c.config_get("dir").items()
            | c.config_get("dbfilename").items()
            | c.config_get("appendonly").items()
            | c.config_get("appenddirname").items()
            | c.config_get("appendfilename").items()
        }
    c.close()
    folder = Path(conf["dir"])
    dump = folder / conf["dbfilename"]
    # Redis 7 keeps its AOF in a directory; Redis 6 in one file (appendfilename) in dir.
    aof_dir = folder / conf.get("appenddirname", "appendonlydir")
    aof_file = folder / conf.get("appendfilename", "appendonly.aof")
    aof_on = conf["appendonly"] == "yes"
    stamp = datetime.now(UTC).strftime("%Y%m%d_%H%M%S")
    incoming = folder / f".{conf['dbfilename']}.restore-{secrets.token_hex(4)}"
    summary = write_checked(plaintext, incoming)  # the live server is untouched so far

    aside: list[tuple[Path, Path]] = []
    stop = server.stop or (lambda: _shutdown(t, wait_seconds))
    try:
        stop()
    except BaseException:
        incoming.unlink(missing_ok=True)
        raise
    try:
        for p in (dump, aof_dir, aof_file):
            if p.exists():
                dest = p.with_name(f"{p.name}.pre_restore_{stamp}")
                p.rename(dest)
                aside.append((p, dest))
        incoming.rename(dump)
        _fsync_dir(folder)
        server.start(["--appendonly", "no"] if aof_on else [])
        loaded = _verify_loaded(t, summary)
        if aof_on:
            _enable_aof(t, wait_seconds)
    except BaseException as exc:
        restarted = _put_back(server, stop, (dump, aof_dir, aof_file), aside, stamp, incoming)
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        then = "" if restarted is None else f", but the server did not start again: {restarted}"
        raise RestoreError(
            f"restore into redis {t.display} failed ({reason}); the previous files were put "
            f"back{then}"
        ) from None
    return {
        "dir": str(folder),
        "moved_aside": [str(dest) for _, dest in aside],
        "keys": loaded,
        "appendonly": aof_on,
    }


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _shutdown(t: RedisTarget, wait_seconds: float) -> None:
    import redis

    c = client(t, timeout=wait_seconds)
    with contextlib.suppress(redis.ConnectionError):
        c.shutdown(nosave=True)
    deadline = time.monotonic() + wait_seconds
    while time.monotonic() < deadline:
        try:
            client(t, timeout=1).ping()
        except redis.ConnectionError:
            return
        time.sleep(0.05)
    raise RestoreError(f"redis {t.display} did not stop within {wait_seconds:.0f} s")


def _verify_loaded(t: RedisTarget, summary: RdbSummary) -> dict[str, int]:
    """Every key of the snapshot is there, except those that expired before loading."""
    c = client(t)
    with one_line_errors(t, "verifying the restored keys"):
        info = c.info("keyspace") | c.info("persistence")
    c.close()
    loaded = keyspace(info)
    expired = int(info.get("rdb_last_load_keys_expired", 0))
    missing = summary.total_keys - sum(loaded.values())
    if missing != expired or any(loaded.get(db, 0) > n for db, n in summary.keys.items()):
        raise RestoreError(
            f"restore into redis {t.display}: {sum(loaded.values())} keys loaded, the snapshot "
            f"holds {summary.total_keys} ({expired} expired on load)"
        )
    return {str(db): n for db, n in sorted(loaded.items())}


def _enable_aof(t: RedisTarget, wait_seconds: float) -> None:
    """AOF on again: CONFIG SET appendonly yes, then wait for the rewrite to finish."""
    c = client(t)
    with one_line_errors(t, "turning AOF back on"):
        c.config_set("appendonly", "yes")
        deadline = time.monotonic() + wait_seconds
        while True:
            p = c.info("persistence")
            if not p["aof_rewrite_in_progress"] and not p["aof_rewrite_scheduled"]:
                break
            if time.monotonic() > deadline:
                raise RestoreError(f"redis {t.display}: the AOF rewrite did not finish")
            time.sleep(0.05)
    c.close()
    if p["aof_last_bgrewrite_status"] != "ok" or not p["aof_enabled"]:
        raise RestoreError(f"redis {t.display}: the AOF rewrite failed")


def _put_back(
    server: LocalServer,
    stop: Callable[[], None],
    ours: tuple[Path, ...],
    aside: list[tuple[Path, Path]],
    stamp: str,
    incoming: Path,
) -> str | None:
    """Put the old files back and start the server: None, or why it did not start."""
    with contextlib.suppress(Exception):
        stop()
    incoming.unlink(missing_ok=True)
    for p in ours:  # what the failed attempt left: kept aside, not deleted
        if p.exists():
            p.rename(p.with_name(f"{p.name}.failed_restore_{stamp}"))
    for original, dest in aside:
        dest.rename(original)
    try:
        server.start([])
    except Exception as exc:
        return str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return None


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
