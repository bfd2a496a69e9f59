"""Side-by-side timing of the Redis snapshot source against redis-cli, on one server.

    .venv/bin/python benchmarks/redis_backup.py                 # 2M keys, ~1 GB used_memory
    .venv/bin/python benchmarks/redis_backup.py --keys 500000 --repeat 3

Starts a throwaway redis-server with Redis's own defaults for replication (notably
``repl-diskless-sync yes`` and ``repl-diskless-sync-delay 5``), fills it with N keys of
mixed types (strings, hashes, lists, sets, zsets), then times, each in a fresh subprocess
with the password in its environment only (``REDISCLI_AUTH``):

    redis-cli --rdb FILE                       (bare transfer)
    redis-cli --rdb FILE && gzip FILE          (the runbook-equivalent pipeline)
    rfbackup: RedisSource.stream() -> compress -> sha256 -> FILE, checked as it streams,
        with gzip (libdeflate level 4, the PostgreSQL default) and zstd level 1 (the Redis
        default: the RDB is already LZF-compressed), each also without the check
    the remote restore of the snapshot into a second empty server (keys/s, and the CPU
        seconds of our process and of the target server, steadier than wall time on a
        shared machine)
    the p99 latency redis-benchmark sees on the live server, alone and during a backup

Every backup waits the server's repl-diskless-sync-delay before the first byte; that wait
is measured on every side (redis-cli's "SYNC sent to master" line, our child's "first
byte") and the ratios are given with it and after the first byte. Each step runs
``--repeat`` times, the median counts. Peak RSS comes from /usr/bin/time. A report, not a
test: the exit code is non-zero only when a step itself failed.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from pydantic import SecretStr

from rfbackup.sandbox.redis import ThrowawayRedis
from rfbackup.sources.redis.target import RedisTarget

PASSWORD = "bench-redis-pw"
PROBE_USER = "latency-probe"  # an ACL user without a password: nothing secret in argv


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


def run_child(argv: list[str], env: dict[str, str]) -> tuple[float, int, float, float]:
    """Wall seconds, peak RSS (KiB) and CPU seconds (user + system) of one child process,
    from ``/usr/bin/time``, and when the first RDB byte arrived (seconds after the start,
    from the child's stderr: redis-cli's "SYNC sent to master" line, printed once the
    server's $EOF header came, or our child's "first byte"; 0 for other tools). The CPU
    figure does not depend on what else the machine runs."""
    with tempfile.NamedTemporaryFile(prefix="rfbackup-bench-rss-") as rss:
        t0 = time.perf_counter()
        first = 0.0
        proc = subprocess.Popen(
            ["/usr/bin/time", "-f", "%M %U %S", "-o", rss.name, *argv],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        assert proc.stderr is not None
        for line in proc.stderr:
            if not first and (b"SYNC sent" in line or b"first byte" in line):
                first = time.perf_counter() - t0
        elapsed = time.perf_counter() - t0
        if proc.wait() != 0:
            raise SystemExit(f"step failed: {argv}")
        peak, user, system = Path(rss.name).read_text().split()[-3:]
        return elapsed, int(peak), float(user) + float(system), first


def ours(port: int, dest: str, mode: str) -> None:
    """Child: our stream -> compression (``gzip:4`` or ``zstd:1``, 2 threads) -> sha256 ->
    FILE, checked as it streams unless ``mode`` ends with ``:nocheck``."""
    from rfbackup.pipeline import HashingSink, compressor
    from rfbackup.sources.redis import RedisSource
    from rfbackup.sources.redis.fetch import fetch

    kind, level, check = mode.split(":")
    target = RedisTarget(port=port, password=SecretStr(os.environ["BENCH_REDIS_PASSWORD"]))
    with open(dest, "wb") as fh:
        sink = HashingSink(fh)
        comp = compressor(kind, sink, int(level), 2)
        t0 = time.perf_counter()
        chunks = RedisSource(target).stream() if check == "check" else fetch(target).chunks
        first = None
        for chunk in chunks:
            if first is None:  # the server's wait before a diskless transfer, mostly
                first = time.perf_counter() - t0
                print("first byte", file=sys.stderr, flush=True)
            comp.write(chunk)
        comp.finish()


def latency_p99(port: int, requests: int) -> tuple[float, float]:
    """(p99 ms, requests/s) of GET from redis-benchmark: 4 clients, no pipelining."""
    out = subprocess.run(
        ["redis-benchmark", "-p", str(port), "--user", PROBE_USER, "-a", "any",
         "-t", "get", "-n", str(requests), "-c", "4", "--csv"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    head, row = (line.replace('"', "").split(",") for line in out.strip().splitlines()[-2:])
    got = dict(zip(head, row, strict=True))
    return float(got["p99_latency_ms"]), float(got["rps"])


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


STEPS = {  # name -> our child's mode (None: a redis-cli step)
    "redis-cli --rdb": None,
    "redis-cli --rdb + gzip": None,
    "rfbackup zstd-1 checked": "zstd:1:check",
    "rfbackup zstd-1 no check": "zstd:1:nocheck",
    "rfbackup gzip-4 checked": "gzip:4:check",
    "rfbackup gzip-4 no check": "gzip:4:nocheck",
}


def main() -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--keys", type=int, default=2_000_000)
    ap.add_argument("--repeat", type=int, default=1, help="runs per step; the median counts")
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        ours(int(args.child[0]), args.child[1], args.child[2])
        return 0

    # Redis's default delay (the sandbox sets 0 for the tests): the same for every side.
    server = ThrowawayRedis(password=PASSWORD, settings={"repl-diskless-sync-delay": "5"})
    env = {**os.environ, "REDISCLI_AUTH": PASSWORD, "BENCH_REDIS_PASSWORD": PASSWORD}
    out: dict[str, Any] = {"keys": args.keys, "repeat": args.repeat}
    with server, tempfile.TemporaryDirectory(prefix="rfbackup-bench-") as tmp:
        t0 = time.perf_counter()
        fill(server, args.keys)
        out["fill_seconds"] = round(time.perf_counter() - t0, 1)
        c = server.client()
        c.acl_setuser(PROBE_USER, enabled=True, nopass=True, commands=["+get"], keys=["*"])
        out["used_memory_mb"] = round(c.info("memory")["used_memory"] / 2**20)
        cfg = c.config_get("repl-diskless-sync*")
        out["server"] = {k: v for k, v in cfg.items()}
        delay = float(cfg["repl-diskless-sync-delay"])
        cli = ["redis-cli", "-p", str(server.port), "--no-auth-warning"]
        f = Path(tmp) / "dump.rdb"
        me = [sys.executable, __file__, "--child", str(server.port)]

        times: dict[str, list[float]] = {k: [] for k in STEPS}
        cpus: dict[str, list[float]] = {k: [] for k in STEPS}
        rss: dict[str, int] = {}
        firsts: dict[str, list[float]] = {k: [] for k in STEPS}  # start -> first RDB byte
        for _ in range(args.repeat):
            for name, mode in STEPS.items():
                f.unlink(missing_ok=True)
                Path(str(f) + ".gz").unlink(missing_ok=True)
                if mode is None:
                    t, m, u, w = run_child([*cli, "--rdb", str(f)], env)
                    out["rdb_mb"] = round(f.stat().st_size / 2**20, 1)
                    if name.endswith("gzip"):
                        gz = run_child(["gzip", "-f", str(f)], env)
                        t, u = t + gz[0], u + gz[2]
                        out["gzip_mb"] = round(Path(str(f) + ".gz").stat().st_size / 2**20, 1)
                else:
                    t, m, u, w = run_child([*me, str(Path(tmp) / "ours"), mode], env)
                    out[f"stored_mb_{mode.rsplit(':', 1)[0]}"] = round(
                        (Path(tmp) / "ours").stat().st_size / 2**20, 1
                    )
                times[name].append(t)
                firsts[name].append(w)
                cpus[name].append(u)
                rss[name] = max(rss.get(name, 0), m)
        out["latest_fork_usec"] = c.info("stats")["latest_fork_usec"]

        # The live server's latency: alone, then while a backup transfers (after the delay).
        rps = latency_p99(server.port, 50_000)[1]
        out["p99_ms_idle"] = latency_p99(server.port, int(rps * 3))[0]
        backup = subprocess.Popen(
            [*me, str(Path(tmp) / "ours"), "zstd:1:check"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        time.sleep(delay + 0.2)
        out["p99_ms_during_backup"] = latency_p99(server.port, int(rps * 2))[0]
        if backup.wait() != 0:
            raise SystemExit("the backup under load failed")

        # The check alone, over the stored file (CRC64 + key walk), and redis-check-rdb.
        from rfbackup.sources.redis.check import check_file

        run_child([*cli, "--rdb", str(f)], env)
        t0 = time.perf_counter()
        summary = check_file(f)
        out["check_file_seconds"] = round(time.perf_counter() - t0, 2)
        out["check_keys"] = summary.total_keys
        t0 = time.perf_counter()
        subprocess.run(["redis-check-rdb", str(f)], check=True, capture_output=True)
        out["redis_check_rdb_seconds"] = round(time.perf_counter() - t0, 2)

        # Remote restore into an empty second server, through the source's entry point.
        from rfbackup.sources.redis import RedisSource

        walls: list[float] = []
        replays: list[float] = []  # the replay alone, after the checked copy
        for _ in range(args.repeat):
            with ThrowawayRedis(password=PASSWORD) as dest, open(f, "rb") as fh:
                assert dest.proc is not None
                ours_cpu, dest_cpu = time.process_time(), cpu_seconds(dest.proc.pid)
                t0 = time.perf_counter()
                got = RedisSource(
                    RedisTarget(port=dest.port, password=SecretStr(PASSWORD))
                ).restore(fh)
                walls.append(time.perf_counter() - t0)
                replays.append(got["seconds"])
                out["remote_restore_cpu_ours"] = round(time.process_time() - ours_cpu, 2)
                out["remote_restore_cpu_target"] = round(cpu_seconds(dest.proc.pid) - dest_cpu, 2)
        rt = statistics.median(walls)
        out["remote_restore_seconds"] = round(rt, 2)
        out["remote_restore_keys_per_s"] = round(summary.total_keys / rt)
        out["remote_replay_phase_keys_per_s"] = round(
            summary.total_keys / statistics.median(replays)
        )
        cpu = out["remote_restore_cpu_ours"] + out["remote_restore_cpu_target"]
        out["remote_restore_keys_per_cpu_s"] = round(summary.total_keys / cpu)

    out["runs"] = {
        k: {
            "seconds": round(statistics.median(times[k]), 2),
            "all": [round(x, 2) for x in times[k]],
            "cpu_seconds": round(statistics.median(cpus[k]), 2),
            "peak_rss_mb": round(rss[k] / 1024),
        }
        for k in STEPS
    }
    out["delay_seconds"] = delay
    # The server's wait (repl-diskless-sync-delay, checked by its cron, so 5 to 6 s) until
    # the first RDB byte, measured on every side: "after the first byte" compares the
    # transfers alone, without that wait's jitter (our Python start-up falls inside it).
    out["first_byte_s"] = {k: [round(x, 2) for x in v] for k, v in firsts.items()}
    after = {k: [t - w for t, w in zip(times[k], firsts[k], strict=True)] for k in STEPS}
    # Medians, and the fastest run of each step: on a shared machine the fastest is the one
    # other jobs disturbed least.
    for stat, pick in (("median", statistics.median), ("min", min)):
        best = {k: pick(v) for k, v in times.items()}
        xfer = {k: pick(v) for k, v in after.items()}
        cli_t, gz_t = best["redis-cli --rdb"], best["redis-cli --rdb + gzip"]
        for kind in ("zstd-1", "gzip-4"):
            mine, nochk = best[f"rfbackup {kind} checked"], best[f"rfbackup {kind} no check"]
            m_x, n_x = xfer[f"rfbackup {kind} checked"], xfer[f"rfbackup {kind} no check"]
            out[f"{stat}: {kind} vs cli+gzip"] = round(mine / gz_t, 2)
            out[f"{stat}: {kind} vs cli+gzip after the first byte"] = round(
                m_x / xfer["redis-cli --rdb + gzip"], 2
            )
            out[f"{stat}: {kind} vs bare cli"] = round(mine / cli_t, 2)
            out[f"{stat}: {kind} vs bare cli after the first byte"] = round(
                m_x / xfer["redis-cli --rdb"], 2
            )
            out[f"{stat}: {kind} check overhead"] = round((mine - nochk) / nochk, 2)
            out[f"{stat}: {kind} check overhead after the first byte"] = round((m_x - n_x) / n_x, 2)
    for kind in ("zstd-1", "gzip-4"):
        cpu = {k: statistics.median(v) for k, v in cpus.items()}
        mine, nochk = cpu[f"rfbackup {kind} checked"], cpu[f"rfbackup {kind} no check"]
        out[f"cpu: {kind} check adds"] = round((mine - nochk) / nochk, 2)
    if args.json:
        print(json.dumps(out, indent=2))
    else:
        for k, v in out.items():
            print(f"{k:44} {v}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
