"""Side-by-side timing of rfbackup against the runbook's shell pipeline, in one run.

    make bench BENCH_ARGS="--size 2GB"
    .venv/bin/python benchmarks/postgres_backup.py --port 55432 --password ... --dbname rf

Measures, on the same database: bare ``pg_dump > /dev/null``; the runbook's
``pg_dump | gzip > file``; ``rfbackup backup postgres``; a restore through
``gunzip -c | psql``; ``rfbackup restore``; with ``--s3``, the runbook's
``pg_dump | gzip > tmp && aws s3 cp`` (s3transfer, the engine of ``aws s3 cp``), boto3
``upload_file`` of bytes already on disk, and ``rfbackup backup postgres`` streaming to S3.
Prints each figure, the ratios and whether each target is met. A report, not a test.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rfbackup.sandbox import dataset
from rfbackup.sandbox.postgres import ThrowawayPostgres

RFBACKUP = [sys.executable, "-m", "rfbackup"]


def parse_size(text: str) -> int:
    m = re.fullmatch(r"(\d+(?:\.\d+)?)\s*([KMG]?B?)", text.strip().upper())
    if not m:
        raise argparse.ArgumentTypeError(f"bad size {text!r}: use e.g. 200MB or 2GB")
    unit = {"": 1, "B": 1, "K": 1e3, "KB": 1e3, "M": 1e6, "MB": 1e6, "G": 1e9, "GB": 1e9}
    return int(float(m[1]) * unit[m[2]])


def timed(cmd: list[str] | str, env: dict[str, str], repeat: int) -> tuple[float, int]:
    """Median wall seconds over ``repeat`` runs, and the max peak RSS (KB) of the command."""
    times, rss = [], 0
    for _ in range(repeat):
        with tempfile.NamedTemporaryFile("r") as out:
            wrapped = ["/usr/bin/time", "-f", "%M", "-o", out.name]
            full = (
                [*wrapped, *cmd]
                if isinstance(cmd, list)
                else [*wrapped, "bash", "-o", "pipefail", "-c", cmd]
            )
            t0 = time.perf_counter()
            proc = subprocess.run(
                full, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
            )
            times.append(time.perf_counter() - t0)
            if proc.returncode != 0:
                raise SystemExit(f"benchmark step failed: {cmd}\n{proc.stderr[-2000:]}")
            rss = max(rss, int(out.read().strip().splitlines()[-1]))
    return statistics.median(times), rss


def run(args: argparse.Namespace) -> dict[str, Any]:
    own = args.port is None
    pg = ThrowawayPostgres() if own else None
    work = Path(tempfile.mkdtemp(prefix="rfbackup-bench-"))
    results: dict[str, Any] = {}
    try:
        if pg is not None:
            pg.start()
            pg.psql(f"CREATE DATABASE {args.dbname}")
            print(f"generating ~{args.size / 1e9:.1f} GB of ResearchFlow-like data...", flush=True)
            dataset.build(pg.dsn(args.dbname), args.size)
            conn = pg.env(args.dbname)
        else:
            conn = {
                "PGHOST": "127.0.0.1",
                "PGPORT": str(args.port),
                "PGUSER": "postgres",
                "PGPASSWORD": args.password,
                "PGDATABASE": args.dbname,
            }
        env = {
            **os.environ,
            **conn,
            "RFBACKUP_BACKUP_DIR": str(work / "backups"),
            "RFBACKUP_LOG_FILE": str(work / "bench.log"),
            "RFBACKUP_CONFIG": str(work / "none.toml"),
        }

        def psql(sql: str, db: str = "postgres") -> str:
            return subprocess.run(
                ["psql", "-X", "-Atq", "-c", sql],
                env={**env, "PGDATABASE": db},
                check=True,
                capture_output=True,
                text=True,
            ).stdout.strip()

        results["database_bytes"] = int(psql(f"SELECT pg_database_size('{args.dbname}')"))
        subprocess.run("pg_dump > /dev/null", shell=True, env=env, check=True)  # warm caches
        gz = work / "runbook.sql.gz"
        steps: list[tuple[str, Callable[[], tuple[float, int]]]] = [
            ("pg_dump_bare", lambda: timed("pg_dump > /dev/null", env, args.repeat)),
            ("runbook_gzip", lambda: timed(f"pg_dump | gzip > {gz}", env, args.repeat)),
            ("rfbackup_backup", lambda: timed([*RFBACKUP, "backup", "postgres"], env, 1)),
        ]
        for key, step in steps:
            print(f"timing {key}...", flush=True)
            results[key], results[f"{key}_rss_kb"] = step()
        ours = sorted((work / "backups").glob("backup_*.sql.gz"))[-1]
        results["raw_dump_bytes"] = json.loads(
            (ours.parent / f"{ours.name}.manifest.json").read_text()
        )["data"]["raw_bytes"]
        results["gzip_bytes"], results["rfbackup_bytes"] = gz.stat().st_size, ours.stat().st_size

        for db in ("bench_gunzip", "bench_rfbackup"):
            psql(f"DROP DATABASE IF EXISTS {db}")
        psql("CREATE DATABASE bench_gunzip")
        print("timing restores...", flush=True)
        results["runbook_restore"], _ = timed(
            f"gunzip -c {gz} | psql -X -q -v ON_ERROR_STOP=1 --single-transaction",
            {**env, "PGDATABASE": "bench_gunzip"},
            1,
        )
        results["rfbackup_restore"], results["rfbackup_restore_rss_kb"] = timed(
            [*RFBACKUP, "restore", str(ours), "--yes", "--target-db", "bench_rfbackup"], env, 1
        )
        for db in ("bench_gunzip", "bench_rfbackup"):
            psql(f"DROP DATABASE IF EXISTS {db}")
        if args.s3:
            results.update(run_s3(env, work, gz, args))
        return results
    finally:
        shutil.rmtree(work, ignore_errors=True)
        if pg is not None:
            pg.cleanup()


def run_s3(env: dict[str, str], work: Path, gz: Path, args: argparse.Namespace) -> dict[str, Any]:
    from rfbackup.sandbox.seaweedfs import ThrowawayS3

    out: dict[str, Any] = {}
    with ThrowawayS3() as s3:
        s3.create_bucket("bench")
        s3env = {**env, **s3.env(), "RFBACKUP_REPOSITORY": "s3://bench/rf"}
        tmp = work / "tmp.sql.gz"
        upload = (
            f"{sys.executable} -c \"import boto3,sys; boto3.client('s3').upload_file("
            f"sys.argv[1], 'bench', sys.argv[2])\""
        )
        print("timing S3: runbook pipeline, upload_file, rfbackup...", flush=True)
        out["s3_runbook"], _ = timed(
            f"pg_dump | gzip > {tmp} && {upload} {tmp} runbook/$(date +%s%N).sql.gz", s3env, 1
        )
        out["s3_upload_file"], _ = timed(f"{upload} {gz} upload_file/$(date +%s%N)", s3env, 1)
        out["s3_upload_bytes"] = gz.stat().st_size
        stream = (
            f'{sys.executable} -c "import sys; from rfbackup import config; '
            "w = config.load().open_repository().writer(sys.argv[2]); f = open(sys.argv[1], 'rb')\n"
            "while (c := f.read(1 << 20)): w.write(c)\n"
            'w.commit()"'
        )
        out["s3_stream_writer"], _ = timed(f"{stream} {gz} stream/$(date +%s%N)", s3env, 1)
        out["s3_rfbackup"], out["s3_rfbackup_rss_kb"] = timed(
            [*RFBACKUP, "backup", "postgres"], s3env, 1
        )
    return out


def report(r: dict[str, Any]) -> list[tuple[str, str, bool]]:
    def ratio(a: str, b: str) -> float:
        return float(r[a]) / float(r[b])

    rows = [
        (
            "backup vs bare pg_dump",
            f"{ratio('rfbackup_backup', 'pg_dump_bare'):.2f}x (<= 1.25x)",
            ratio("rfbackup_backup", "pg_dump_bare") <= 1.25,
        ),
        (
            "backup speed-up vs runbook pg_dump | gzip",
            f"{ratio('runbook_gzip', 'rfbackup_backup'):.2f}x (>= 4x)",
            ratio("runbook_gzip", "rfbackup_backup") >= 4,
        ),
        (
            ".sql.gz size vs gzip",
            f"{ratio('rfbackup_bytes', 'gzip_bytes'):.3f}x (<= 1.05x)",
            ratio("rfbackup_bytes", "gzip_bytes") <= 1.05,
        ),
        (
            "restore vs gunzip | psql",
            f"{ratio('rfbackup_restore', 'runbook_restore'):.2f}x (<= 1.15x)",
            ratio("rfbackup_restore", "runbook_restore") <= 1.15,
        ),
        (
            "peak RSS backup / restore",
            f"{r['rfbackup_backup_rss_kb'] / 1024:.0f} / {r['rfbackup_restore_rss_kb'] / 1024:.0f}"
            " MB (<= 150)",
            max(r["rfbackup_backup_rss_kb"], r["rfbackup_restore_rss_kb"]) <= 150 * 1024,
        ),
    ]
    if "s3_rfbackup" in r:
        stream_tp = r["s3_upload_bytes"] / r["s3_stream_writer"]
        file_tp = r["s3_upload_bytes"] / r["s3_upload_file"]
        rows += [
            (
                "S3 streaming writer vs upload_file, same bytes",
                f"{stream_tp / file_tp:.2f} "
                f"({stream_tp / 1e6:.0f} vs {file_tp / 1e6:.0f} MB/s) (>= 0.90)",
                stream_tp / file_tp >= 0.9,
            ),
            (
                "S3 backup speed-up vs runbook + aws s3 cp",
                f"{ratio('s3_runbook', 's3_rfbackup'):.2f}x (>= 3x)",
                ratio("s3_runbook", "s3_rfbackup") >= 3,
            ),
            (
                "S3 backup peak RSS",
                f"{r['s3_rfbackup_rss_kb'] / 1024:.0f} MB (<= 200)",
                r["s3_rfbackup_rss_kb"] <= 200 * 1024,
            ),
        ]
    return rows


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument(
        "--size",
        type=parse_size,
        default=parse_size("200MB"),
        help="dataset size to generate (default 200MB; the targets are for 2GB)",
    )
    p.add_argument("--port", type=int, help="reuse a running cluster on 127.0.0.1:PORT")
    p.add_argument("--password", default=os.environ.get("PGPASSWORD", ""))
    p.add_argument("--dbname", default="rf")
    p.add_argument("--repeat", type=int, default=1, help="runs of the shell baselines (median)")
    p.add_argument("--s3", action="store_true", help="also time backups into S3 (SeaweedFS)")
    p.add_argument("--json", action="store_true", help="print the raw figures as JSON")
    args = p.parse_args()
    r = run(args)
    if args.json:
        print(json.dumps(r, indent=2))
    print(
        f"\ndatabase {r['database_bytes'] / 1e9:.2f} GB, raw dump "
        f"{r['raw_dump_bytes'] / 1e9:.2f} GB, machine: {os.cpu_count()} cores"
    )
    for key in (
        "pg_dump_bare",
        "runbook_gzip",
        "rfbackup_backup",
        "runbook_restore",
        "rfbackup_restore",
        "s3_runbook",
        "s3_upload_file",
        "s3_stream_writer",
        "s3_rfbackup",
    ):
        if key in r:
            print(f"  {key:<18} {r[key]:8.2f} s")
    print(
        f"  gzip size {r['gzip_bytes'] / 1e6:.1f} MB, rfbackup size "
        f"{r['rfbackup_bytes'] / 1e6:.1f} MB"
    )
    for what, value, ok in report(r):
        print(f"  [{'PASS' if ok else 'FAIL'}] {what}: {value}")


if __name__ == "__main__":
    main()
