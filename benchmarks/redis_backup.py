"""Side-by-side timing of the Redis snapshot source against redis-cli, on one server.

    .venv/bin/python benchmarks/redis_backup.py                 # 2M keys, ~1 GB used_memory
    .venv/bin/python benchmarks/redis_backup.py --keys 500000

Starts a throwaway redis-server with Redis's own defaults for replication (notably
``repl-diskless-sync yes`` and ``repl-diskless-sync-delay 5``), fills it with N keys of
mixed types (strings, hashes, lists, sets, zsets), then times, each in a fresh subprocess
with the password in its environment only (``REDISCLI_AUTH``):

    a. redis-cli --rdb FILE                       (bare transfer)
    b. redis-cli --rdb FILE && gzip FILE          (the runbook-equivalent pipeline)
    c. rfbackup: RedisSource.stream() -> gzip stage -> sha256 -> FILE (checked as it streams)
    d. the same without the check (fetch only), for the check's overhead
    e. remote restore of the snapshot into a second empty server (keys/s)

Every run waits the server's repl-diskless-sync-delay before the first byte; it is reported
separately ("delay") and the ratios are given with and without it. Peak RSS comes from
/usr/bin/time. A report, not a test: the exit code is non-zero only when a step itself failed.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from pydantic import SecretStr

from rfbackup.config import RedisTarget
from rfbackup.sandbox.redis import ThrowawayRedis

PASSWORD = "bench-redis-pw"


def fill(r: ThrowawayRedis, keys: int, seed: int = 1) -> None:
    rng = random.Random(seed)
    c = r.client()
    p = c.pipeline(transaction=False)
    for i in range(keys):
        kind = i % 20
        if kind < 14:  # 70 % strings, 100-700 bytes, half of them random (incompressible)
            n = rng.randint(100, 700)
            p.set(f"s:{i}", os.urandom(n // 2) + b"a" * (n - n // 2))
        elif kind < 16:
            p.hset(f"h:{i}", mapping={f"f{j}": f"value-{j}-{i}" * 3 for j in range(8)})
        elif kind < 18:
            p.rpush(f"l:{i}", *[f"item-{j}-{i}" for j in range(10)])
        elif kind < 19:
            p.sadd(f"set:{i}", *[f"m{j}" for j in range(10)])
        else:
            p.zadd(f"z:{i}", {f"m{j}": rng.random() for j in range(10)})
        if i % 10 == 0:
            p.expire(f"s:{i}", 86_400) if kind < 14 else None
        if i % 5000 == 4999:
            p.execute()
    p.execute()
    c.close()


def run_child(argv: list[str], env: dict[str, str]) -> tuple[float, int]:
    """Wall seconds and peak RSS (KiB, from ``/usr/bin/time -f %M``) of one child process."""
    with tempfile.NamedTemporaryFile(prefix="rfbackup-bench-rss-") as rss:
        t0 = time.perf_counter()
        proc = subprocess.run(
            ["/usr/bin/time", "-f", "%M", "-o", rss.name, *argv], env=env, stdout=subprocess.DEVNULL
        )
        elapsed = time.perf_counter() - t0
        if proc.returncode != 0:
            raise SystemExit(f"step failed: {argv}")
        return elapsed, int(Path(rss.name).read_text().split()[-1])


def ours(port: int, dest: str, check: bool) -> None:
    """Child: our stream -> gzip (libdeflate, level 4, 2 threads) -> sha256 -> FILE."""
    from rfbackup.pipeline import HashingSink, compressor
    from rfbackup.sources.redis import RedisSource
    from rfbackup.sources.redis.fetch import fetch

    target = RedisTarget(port=port, password=SecretStr(os.environ["BENCH_REDIS_PASSWORD"]))
    t0 = time.perf_counter()
    first = 0.0
    with open(dest, "wb") as fh:
        sink = HashingSink(fh)
        gz = compressor("gzip", sink, 4, 2)
        if check:
            src = RedisSource(target)
            chunks = src.stream()
        else:
            chunks = fetch(target).chunks
        for chunk in chunks:
            first = first or time.perf_counter() - t0
            gz.write(chunk)
        gz.finish()
    print(json.dumps({"first_byte": first}), file=sys.stderr)


def main() -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--keys", type=int, default=2_000_000)
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        ours(int(args.child[0]), args.child[1], args.child[2] == "check")
        return 0

    # Redis's default delay (the sandbox sets 0 for the tests): the same for every side.
    server = ThrowawayRedis(password=PASSWORD, settings={"repl-diskless-sync-delay": "5"})
    env = {**os.environ, "REDISCLI_AUTH": PASSWORD, "BENCH_REDIS_PASSWORD": PASSWORD}
    out: dict[str, Any] = {"keys": args.keys}
    with server, tempfile.TemporaryDirectory(prefix="rfbackup-bench-") as tmp:
        t0 = time.perf_counter()
        fill(server, args.keys)
        out["fill_seconds"] = round(time.perf_counter() - t0, 1)
        c = server.client()
        out["used_memory_mb"] = round(c.info("memory")["used_memory"] / 2**20)
        cfg = c.config_get("repl-diskless-sync*")
        out["server"] = {k: v for k, v in cfg.items()}
        delay = float(cfg["repl-diskless-sync-delay"])
        cli = ["redis-cli", "-p", str(server.port), "--no-auth-warning"]
        f = Path(tmp) / "dump.rdb"

        res: dict[str, tuple[float, int]] = {}
        res["redis-cli --rdb"] = run_child([*cli, "--rdb", str(f)], env)
        out["rdb_mb"] = round(f.stat().st_size / 2**20, 1)
        t_cli, rss = run_child([*cli, "--rdb", str(f)], env)
        t_gz, _ = run_child(["gzip", "-f", str(f)], env)
        res["redis-cli --rdb + gzip"] = (t_cli + t_gz, rss)
        out["gzip_mb"] = round(Path(str(f) + ".gz").stat().st_size / 2**20, 1)
        me = [sys.executable, __file__, "--child", str(server.port)]
        res["rfbackup (checked)"] = run_child([*me, str(Path(tmp) / "ours.gz"), "check"], env)
        out["ours_gz_mb"] = round((Path(tmp) / "ours.gz").stat().st_size / 2**20, 1)
        res["rfbackup (no check)"] = run_child([*me, str(Path(tmp) / "nochk.gz"), "nocheck"], env)
        out["latest_fork_usec"] = c.info("stats")["latest_fork_usec"]

        # The check alone, over the stored file (CRC64 + key walk), single thread of Python.
        from rfbackup.sources.redis.check import check_file

        Path(str(f) + ".gz").unlink()
        run_child([*cli, "--rdb", str(f)], env)
        t0 = time.perf_counter()
        summary = check_file(f)
        out["check_file_seconds"] = round(time.perf_counter() - t0, 2)
        out["check_keys"] = summary.total_keys
        t0 = time.perf_counter()
        subprocess.run(["redis-check-rdb", str(f)], check=True, capture_output=True)
        out["redis_check_rdb_seconds"] = round(time.perf_counter() - t0, 2)

        # Remote restore throughput into an empty second server.
        from rfbackup.sources.redis.restore import restore_remote

        with ThrowawayRedis(password=PASSWORD) as dest, open(f, "rb") as fh:
            t0 = time.perf_counter()
            restore_remote(fh, RedisTarget(port=dest.port, password=SecretStr(PASSWORD)))
            rt = time.perf_counter() - t0
            out["remote_restore_seconds"] = round(rt, 1)
            out["remote_restore_keys_per_s"] = round(summary.total_keys / rt)

    out["runs"] = {
        k: {"seconds": round(t, 2), "peak_rss_mb": round(m / 1024)} for k, (t, m) in res.items()
    }
    cli_t = res["redis-cli --rdb"][0]
    gz_t = res["redis-cli --rdb + gzip"][0]
    our_t = res["rfbackup (checked)"][0]
    nochk = res["rfbackup (no check)"][0]
    out["delay_seconds"] = delay
    out["ratio_vs_cli_gzip"] = round(our_t / gz_t, 2)
    out["ratio_vs_cli_gzip_without_delay"] = round((our_t - delay) / (gz_t - delay), 2)
    out["ratio_vs_bare_cli"] = round(our_t / cli_t, 2)
    out["ratio_vs_bare_cli_without_delay"] = round((our_t - delay) / (cli_t - delay), 2)
    out["check_overhead"] = round((our_t - nochk) / (nochk - delay), 2)
    if args.json:
        print(json.dumps(out, indent=2))
    else:
        for k, v in out.items():
            print(f"{k:36} {v}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
