"""``rfbackup restore redis SNAPSHOT``: find and verify the snapshot through the engine, say
what will happen, confirm, then restore into the configured Redis.

Two targets: ``files`` (a Redis whose files we control: stop, move dump.rdb and the AOF
aside, put the snapshot in place, start, verify; any failure puts the old files back), or
the default, any Redis by RESTORE (remote and managed services included).
"""

from __future__ import annotations

import shlex
import subprocess
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from rfbackup.engine import fetch
from rfbackup.errors import Aborted, ConfigError, RestoreError
from rfbackup.logs import log
from rfbackup.sources.redis import COMPONENT
from rfbackup.sources.redis.connection import client, info, keyspace, one_line_errors

if TYPE_CHECKING:
    from rfbackup.config import Settings
    from rfbackup.sources.redis.target import RedisTarget

START_TIMEOUT = 300.0


def restore_snapshot(
    settings: Settings,
    name: str,
    *,
    files: bool = False,
    start_command: str | None = None,
    dbs: list[int] | None = None,
    match: str | None = None,
    replace: bool = False,
    dry_run: bool = False,
    confirm: Callable[[str], bool] = lambda _: True,
    repo_url: str | None = None,
    allow_unverified: bool = False,
) -> dict[str, Any]:
    if files and (dbs or match):
        raise ConfigError("--db and --match restore part of a snapshot: only without --files")
    target = settings.redis_target()
    loc, m, identities = fetch.open_verified(
        settings, name, component=COMPONENT, repo_url=repo_url, allow_unverified=allow_unverified
    )
    section = m.source
    keys = {int(db): int(n) for db, n in section.get("keys", {}).items()}
    chosen = sorted(db for db in keys if dbs is None or db in dbs)
    argv = _start_argv(target, start_command) if files else []
    plan = _plan(m.name, target, files, keys, chosen, match, replace)
    out: dict[str, Any] = {
        "snapshot": m.name,
        "target": target.display,
        "how": "files" if files else "restore",
        "databases": chosen,
        "snapshot_keys": {str(db): keys[db] for db in chosen},
        "plan": plan,
    }
    if dry_run:
        if not files:
            out["target_keys_now"] = _target_keys(target, chosen)
        return {**out, "dry_run": True}
    if not confirm(plan):
        raise Aborted("restore cancelled")
    log.info("%s", plan)
    from rfbackup.sources.redis.remote import restore_remote
    from rfbackup.sources.redis.restore import LocalServer, restore_files

    with loc.repo.open(loc.key) as raw, fetch.plaintext(loc, raw, identities) as clear:
        if files:
            server = LocalServer(target, start=lambda extra: _start(target, [*argv, *extra]))
            result = restore_files(clear, server)
        else:
            result = restore_remote(
                clear,
                target,
                replace=replace,
                dbs=dbs,
                match=match,
                progress=_progress(),
                tmp_dir=settings.tmp_dir,
            )
    return {**out, "dry_run": False, "result": result}


def _plan(
    name: str,
    target: RedisTarget,
    files: bool,
    keys: dict[int, int],
    chosen: list[int],
    match: str | None,
    replace: bool,
) -> str:
    where = f"redis {target.host}:{target.port}"
    listed = ", ".join(f"db {db} ({keys[db]} keys)" for db in chosen) or "no database"
    if files:
        return (
            f"Restore {name} into {where} by its files: stop it, move its dump.rdb and AOF "
            f"aside (kept), load {listed}, start it and check the key counts"
        )
    what = f"the keys matching {match!r} of {listed}" if match else listed
    how = "replacing keys that exist there" if replace else "refusing if any already exist"
    return f"Restore {what} from {name} into {where} by RESTORE, {how}"


def _target_keys(target: RedisTarget, dbs: list[int]) -> dict[str, int]:
    have = keyspace(info(target, "keyspace"))
    return {str(db): have.get(db, 0) for db in dbs}


def _start_argv(target: RedisTarget, start_command: str | None) -> list[str]:
    """How the server is started again: ``start_command`` (split like a shell, never run by
    one), else ``redis-server CONFIG_FILE --daemonize yes`` with the file it runs from."""
    if start_command:
        argv = shlex.split(start_command)
        if not argv:
            raise ConfigError("--start-command is empty")
        return argv
    config_file = str(info(target, "server").get("config_file") or "")
    if not config_file:
        raise ConfigError(
            f"redis {target.display} runs without a configuration file: say how to start "
            "it again with --start-command"
        )
    return ["redis-server", config_file, "--daemonize", "yes"]


def _start(target: RedisTarget, argv: list[str]) -> None:
    """Run the start command (it must return: daemonize, or a service manager), then wait
    until the server answers and has loaded its data."""
    try:
        done = subprocess.run(
            argv, stdin=subprocess.DEVNULL, capture_output=True, timeout=START_TIMEOUT
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise RestoreError(f"starting redis {target.display} failed: {exc}") from None
    if done.returncode != 0:
        why = (done.stderr or done.stdout).decode(errors="replace").strip().splitlines()
        raise RestoreError(
            f"starting redis {target.display} failed (exit {done.returncode}"
            + (f": {why[-1]}" if why else "")
            + ")"
        )
    deadline = time.monotonic() + START_TIMEOUT
    while True:
        try:
            c = client(target, timeout=5)
            with one_line_errors(target, "waiting for the server"):
                loading = c.info("persistence").get("loading")
            c.close()
            if not loading:
                return
        except Exception as exc:  # not up yet: refused, LOADING...
            if time.monotonic() > deadline:
                raise RestoreError(f"redis {target.display} did not come up: {exc}") from None
        time.sleep(0.05)


def _progress() -> Callable[[int, int], None]:
    last = [0.0]

    def report(db: int, done: int) -> None:
        now = time.monotonic()
        if now - last[0] >= 5:
            last[0] = now
            log.info("db %d: %d keys restored", db, done)

    return report
