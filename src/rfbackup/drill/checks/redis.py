"""Redis snapshots: the newest one fetched and verified (sha256, signature), checked while it
is written into a scratch ``redis-server`` (its own folder, a free port on 127.0.0.1, a random
password), started, and its key count per database compared with the manifest's.

When production Redis answers, a sample of keys that exist in both is compared by value and
TTL presence; production moving on is reported, never a failure. RTO: fetch + check + load
until the scratch server answers. RPO: the age of the snapshot at drill time.
"""

from __future__ import annotations

import secrets
import shutil
import time
from datetime import datetime
from typing import TYPE_CHECKING, Any

from rfbackup import catalog
from rfbackup.drill.registry import register
from rfbackup.errors import Interrupted, RfBackupError

if TYPE_CHECKING:
    from rfbackup.drill.context import Context
    from rfbackup.drill.model import CheckResult

COMPONENT = "redis"


def newest(ctx: Context) -> catalog.Entry | None:
    """The newest Redis snapshot of this environment (any status: a damaged newest snapshot
    is a finding, not a reason to quietly test an older one)."""
    env = ctx.settings.env.value
    for e in catalog.scan(ctx.repo):
        if e.component == COMPONENT and e.status != "no-manifest" and e.environment in (None, env):
            return e
    return None


class RedisCheck:
    component = COMPONENT
    order = 30

    def skip_reason(self, ctx: Context) -> str | None:
        from rfbackup.sandbox.redis import REDIS_SERVER

        if newest(ctx) is None:
            return f"no Redis snapshot in {ctx.repo.url}"
        if shutil.which(REDIS_SERVER) is None:
            return f"no {REDIS_SERVER} binary on this host to restore into"
        return None

    def run(self, ctx: Context, result: CheckResult) -> None:
        from rfbackup.engine import fetch
        from rfbackup.sandbox.redis import ThrowawayRedis
        from rfbackup.sources.redis.restore import write_checked

        entry = newest(ctx)
        assert entry is not None and entry.manifest is not None
        result.backup, result.sha256 = entry.name, entry.sha256
        taken = datetime.fromisoformat(entry.manifest.started_at)
        result.backup_taken_at = result.restorable_point = taken.isoformat()
        result.rpo_seconds = round(max(ctx.now - taken.timestamp(), 0.0), 1)
        scratch = ThrowawayRedis(password=secrets.token_hex(16))
        result.target = f"scratch redis-server on 127.0.0.1:{scratch.port} in {scratch.root}"
        ctx.scratch.add(result.target, scratch.cleanup)  # before it starts: nothing can leak
        t0 = time.monotonic()
        try:
            loc, m, identities = fetch.open_verified(
                ctx.settings, entry.name, component=COMPONENT, repo_url=ctx.repo.url
            )
            scratch.write_conf()
            with loc.repo.open(loc.key) as raw, fetch.plaintext(loc, raw, identities) as clear:
                summary = write_checked(clear, scratch.data_dir / scratch.dbfilename)
            scratch.start()
        except Interrupted:
            raise
        except RfBackupError as exc:
            result.check("restore", False, str(exc))
            return
        result.rto_seconds = round(time.monotonic() - t0, 3)
        result.facts["port"] = scratch.port
        local = scratch.client()
        try:
            self._counts(local, m.source, summary.total_keys, result)
        finally:
            local.close()
        self._compare(ctx, scratch, result)

    @staticmethod
    def _counts(c: Any, source: dict[str, Any], total: int, result: CheckResult) -> None:
        from rfbackup.sources.redis.connection import keyspace

        info = c.info("keyspace") | c.info("persistence")
        loaded = keyspace(info)
        expired = int(info.get("rdb_last_load_keys_expired", 0))
        expected = {int(db): int(n) for db, n in source.get("keys", {}).items()}
        result.facts.update(
            dbsize={str(db): n for db, n in sorted(loaded.items())},
            manifest_keys={str(db): n for db, n in sorted(expected.items())},
            expired_on_load=expired,
        )
        differ = sorted(
            db for db in set(loaded) | set(expected) if loaded.get(db, 0) != expected.get(db, 0)
        )
        ok = sum(expected.values()) - sum(loaded.values()) == expired and (
            not differ or expired > 0
        )
        result.check(
            "key counts",
            ok and sum(expected.values()) == total,
            f"{sum(loaded.values())} keys loaded in {len(loaded)} database(s); manifest "
            f"{sum(expected.values())}, snapshot {total}, {expired} expired on load"
            + (f"; databases differing: {differ}" if differ else ""),
        )

    @staticmethod
    def _compare(ctx: Context, scratch: Any, result: CheckResult) -> None:
        """Sampled keys against production: informational (production moves on)."""
        from rfbackup.sources.redis.connection import client
        from rfbackup.sources.redis.verify_load import _value

        try:
            prod = ctx.settings.redis_target()
            probe = client(prod)
            probe.ping()
            probe.close()
        except Exception as exc:  # unreachable or not configured: nothing to compare
            result.note("production sample", f"production Redis not reachable: {str(exc)[:120]}")
            return
        compared = same = missing = ttl_differs = 0
        dbsize = {int(db): n for db, n in result.facts.get("dbsize", {}).items()}
        for db, n in sorted(dbsize.items()):
            a, b = scratch.client(db=db), client(prod, db=db)
            try:
                for _ in range(min(ctx.sample_rows, n)):
                    key = a.randomkey()
                    if key is None:
                        break
                    if not b.exists(key):
                        missing += 1
                        continue
                    compared += 1
                    same += _value(a, key) == _value(b, key)
                    ttl_differs += (a.pttl(key) >= 0) != (b.pttl(key) >= 0)
            finally:
                a.close()
                b.close()
        result.facts["sampled_keys"] = {
            "compared": compared,
            "same": same,
            "changed_in_production_since": compared - same,
            "ttl_presence_differs": ttl_differs,
            "gone_from_production": missing,
        }
        result.note(
            "production sample",
            f"{same} of {compared} sampled keys equal in production "
            f"({compared - same} changed since, {ttl_differs} TTL presence differs, "
            f"{missing} gone from production)",
        )


register(RedisCheck())
