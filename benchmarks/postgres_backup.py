"""Side-by-side timing of rfbackup against the runbook's shell pipeline, on one database.

    make bench BENCH_ARGS="--size 2GB"
    .venv/bin/python benchmarks/postgres_backup.py --size 100MB
    PGPASSWORD=... .venv/bin/python benchmarks/postgres_backup.py --port 55432 --dbname rf

Either starts a throwaway PostgreSQL cluster and fills it with ResearchFlow-like data
(``--size``), or reuses a running cluster on 127.0.0.1 (``--port``, superuser ``postgres``).
Then times, each in a fresh subprocess with the connection details in its environment only:

    a. pg_dump > /dev/null                      (after one untimed warm-up run)
    b. pg_dump | gzip > FILE                    (the runbook, bash -o pipefail)
    c. rfbackup backup postgres                 (peak RSS with /usr/bin/time -f %M)
    d. gunzip -c FILE | psql --single-transaction   into a new empty database
    e. rfbackup restore FILE --yes --target-db NEW  (peak RSS with /usr/bin/time -f %M)

``--s3`` adds backups to a throwaway S3 server (SeaweedFS). Prints a table with the ratios
against the targets, or JSON with ``--json``. A report, not a test: the exit code is 0
whether targets pass or fail, non-zero only when a step itself failed.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

SUPERUSER = "postgres"
TIME = "/usr/bin/time"  # GNU time: -f %M is the peak RSS in KiB
RSS_LIMIT_MB = 150
S3_RSS_LIMIT_MB = 200

# Variables from the caller's environment that would change what rfbackup measures (another
# repository, encryption, a replica, a different database). RFBACKUP_POSTGRES__* (levels,
# threads), RFBACKUP_PG_BIN and RFBACKUP_TMP_DIR pass through, and are reported.
PASS_THROUGH = ("RFBACKUP_POSTGRES__", "RFBACKUP_PG_BIN", "RFBACKUP_TMP_DIR")

# Uploads a file the way ``aws s3 cp`` does (s3transfer), when the aws CLI is not installed.
UPLOAD_FILE = (
    "import boto3, sys; boto3.client('s3').upload_file(sys.argv[1], sys.argv[2], sys.argv[3])"
)
# Streams a file through rfbackup's own repository writer (no pg_dump, no compression).
STREAM_WRITER = (
    "import sys\n"
    "from rfbackup import config\n"
    "w = config.load().open_repository().writer(sys.argv[2])\n"
    "with open(sys.argv[1], 'rb') as f:\n"
    "    while chunk := f.read(1 << 22):\n"
    "        w.write(chunk)\n"
    "w.commit()\n"
)

# Imports every rfbackup module and the libraries it loads lazily (for the bytecode cache).
WARM_IMPORTS = (
    "import importlib, pkgutil, rfbackup\n"
    "for m in pkgutil.walk_packages(rfbackup.__path__, 'rfbackup.'):\n"
    "    if not m.name.endswith('__main__'):\n"
    "        importlib.import_module(m.name)\n"
    "import deflate, isal.igzip_threaded, zstandard, psycopg, boto3, pyrage, rich.progress\n"
)


class StepFailed(Exception):
    """A benchmarked command exited non-zero: the run is invalid."""


class Interrupted(BaseException):
    """SIGTERM / SIGHUP: unwind like Ctrl-C so everything is cleaned up."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def parse_size(text: str) -> int:
    """``200MB``, ``2GB``, ``1.5G``, ``512MiB`` -> bytes (MB/GB decimal, MiB/GiB binary)."""
    m = re.fullmatch(r"(\d+(?:\.\d+)?)\s*([KMG]?)(I?B?)", text.strip().upper())
    if not m or (m[3] == "I" and not m[2]):
        raise argparse.ArgumentTypeError(f"bad size {text!r}: use e.g. 100MB, 200MB or 2GB")
    base = 1024 if m[3].startswith("I") else 1000
    power = {"": 0, "K": 1, "M": 2, "G": 3}[m[2]]
    size = int(float(m[1]) * base**power)
    if size < 1_000_000:
        raise argparse.ArgumentTypeError(f"size {text!r} is too small: use at least 1MB")
    return size


def mb(n: float) -> str:
    return f"{n / 1e6:,.1f} MB"


def rss_mb(kib: int) -> float:
    """``/usr/bin/time -f %M`` reports KiB; the targets are in (decimal) MB."""
    return kib * 1024 / 1e6


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


@dataclass
class Timing:
    label: str
    runs: list[float] = field(default_factory=list)
    rss_kb: list[int] = field(default_factory=list)

    @property
    def median(self) -> float:
        return statistics.median(self.runs)

    @property
    def peak_rss_kb(self) -> int | None:
        return max(self.rss_kb) if self.rss_kb else None

    def to_dict(self) -> dict[str, Any]:
        return {
            "label": self.label,
            "median_seconds": round(self.median, 3),
            "runs_seconds": [round(t, 3) for t in self.runs],
            "peak_rss_kb": self.peak_rss_kb,
        }


@dataclass
class Target:
    name: str
    measured: float
    limit: float
    unit: str  # "x" or "MB"
    at_most: bool  # True: measured <= limit; False: measured >= limit

    @property
    def passed(self) -> bool:
        return self.measured <= self.limit if self.at_most else self.measured >= self.limit

    def text(self) -> tuple[str, str]:
        digits = 3 if self.unit == "x" and self.limit < 1.1 else 2
        if self.unit == "MB":
            value, limit = f"{self.measured:.0f} MB", f"{self.limit:.0f} MB"
        else:
            value, limit = f"{self.measured:.{digits}f}x", f"{self.limit:g}x"
        return value, f"{'<=' if self.at_most else '>='} {limit}"


class Runner:
    """Runs commands in their own process group, timed, with output kept in files."""

    def __init__(self, work: Path) -> None:
        self.work = work
        self.count = 0

    def run(
        self, argv: Sequence[str], env: dict[str, str], label: str, *, rss: bool = False
    ) -> tuple[float, str, int | None]:
        """Wall seconds, stdout, and peak RSS in KB when ``rss`` (``/usr/bin/time -f %M``)."""
        self.count += 1
        out, err, rss_file = (self.work / f"step{self.count}.{n}" for n in ("out", "err", "rss"))
        cmd = [*([TIME, "-f", "%M", "-o", str(rss_file)] if rss else []), *argv]
        with open(out, "wb") as stdout, open(err, "wb") as stderr:
            t0 = time.perf_counter()
            proc = subprocess.Popen(
                cmd,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=stdout,
                stderr=stderr,
                start_new_session=True,  # so that a whole pipeline can be stopped at once
            )
            try:
                rc = proc.wait()
            except BaseException:
                _stop_group(proc)
                raise
            elapsed = time.perf_counter() - t0
        if rc != 0:
            tail = err.read_text(errors="replace").strip().splitlines()[-15:]
            raise StepFailed(f"{label} failed (exit {rc}):\n  " + "\n  ".join(tail))
        peak = None
        if rss:
            lines = rss_file.read_text().split()
            peak = int(lines[-1]) if lines and lines[-1].isdigit() else None
        return elapsed, out.read_text(errors="replace"), peak


def _stop_group(proc: subprocess.Popen[bytes]) -> None:
    for sig, wait in ((signal.SIGTERM, 15.0), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue


def rfbackup_command() -> list[str]:
    script = Path(sys.executable).parent / "rfbackup"
    return [str(script)] if script.exists() else [sys.executable, "-m", "rfbackup"]


def find_tool(name: str) -> str:
    pg_bin = os.environ.get("RFBACKUP_PG_BIN")
    found = str(Path(pg_bin) / name) if pg_bin else shutil.which(name)
    if not found or not Path(found).exists():
        raise SystemExit(f"{name} not found (PATH or RFBACKUP_PG_BIN)")
    return found


def base_environment() -> tuple[dict[str, str], dict[str, str]]:
    """The caller's environment without libpq or rfbackup settings, and the ones kept."""
    env, kept = {}, {}
    for key, value in os.environ.items():
        if key.startswith("RFBACKUP_"):
            if key.startswith(PASS_THROUGH):
                env[key] = kept[key] = value
        elif not (key.startswith("PG") or key == "DATABASE_URL"):
            env[key] = value
    return env, kept


class Bench:
    def __init__(self, args: argparse.Namespace, work: Path) -> None:
        self.args = args
        self.work = work
        self.runner = Runner(work)
        if not Path(TIME).exists():
            raise SystemExit(f"{TIME} not found: install GNU time (apt-get install time)")
        self.rfbackup = rfbackup_command()
        self.pg_dump = find_tool("pg_dump")
        self.psql = find_tool("psql")
        self.created_dbs: list[str] = []
        self.conn: dict[str, str] = {}
        self.base_env, self.settings_kept = base_environment()
        self.timings: dict[str, Timing] = {}
        self.info: dict[str, Any] = {}

    # -- environment and SQL ----------------------------------------------------------------

    def env(self, dbname: str | None = None, **extra: str) -> dict[str, str]:
        env = {
            **self.base_env,
            **self.conn,
            "RFBACKUP_BACKUP_DIR": str(self.work / "backups"),
            "RFBACKUP_LOG_FILE": str(self.work / "rfbackup.log"),
            "RFBACKUP_CONFIG": str(self.work / "no-rfbackup.toml"),  # ignore ./rfbackup.toml
            "XDG_RUNTIME_DIR": str(self.work),  # locks of S3 repositories: removed with it
            **extra,
        }
        if self.args.bytecode_cache:
            env.pop("PYTHONDONTWRITEBYTECODE", None)
            env["PYTHONPYCACHEPREFIX"] = str(self.work / "pycache")
        if dbname is not None:
            env["PGDATABASE"] = dbname
        return env

    def warm_bytecode(self) -> None:
        """Compile rfbackup and its libraries once, untimed, as an installed tool would be.

        Without a writable ``__pycache__`` (e.g. ``PYTHONDONTWRITEBYTECODE=1``, or a read-only
        install without .pyc files) every run compiles ~400 modules first: about 0.3-0.5 s
        of CPU per command, which is a property of the installation, not of rfbackup.
        """
        self.info["bytecode_cache"] = bool(self.args.bytecode_cache)
        if not self.args.bytecode_cache:
            return
        log("compiling rfbackup's modules into a bytecode cache (untimed)")
        self.runner.run([sys.executable, "-c", WARM_IMPORTS], self.env(), "bytecode warm-up")
        for sub in (["backup", "postgres"], ["restore"]):
            self.runner.run([*self.rfbackup, *sub, "--help"], self.env(), "rfbackup --help")

    def sql(self, query: str, dbname: str = "postgres") -> str:
        proc = subprocess.run(
            [self.psql, "-X", "-q", "-At", "-v", "ON_ERROR_STOP=1", "-c", query],
            env=self.env(dbname),
            capture_output=True,
            text=True,
            check=False,
        )
        if proc.returncode != 0:
            raise StepFailed(f"psql {query!r} failed: {proc.stderr.strip()}")
        return proc.stdout.strip()

    def new_db_name(self, kind: str, i: int) -> str:
        name = f"rfbench_{os.getpid()}_{kind}_{i}"
        if self.sql(f"SELECT count(*) FROM pg_database WHERE datname = '{name}'") != "0":
            raise StepFailed(f"database {name} already exists")
        self.created_dbs.append(name)  # dropped at the end, whoever created it
        return name

    def drop_db(self, name: str) -> None:
        self.sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        if name in self.created_dbs:
            self.created_dbs.remove(name)

    def quiesce(self) -> None:
        """Flush what earlier steps left dirty, so that no step pays for another's writes."""
        self.sql("CHECKPOINT")
        os.sync()

    def record(self, key: str, label: str, seconds: float, rss: int | None = None) -> None:
        t = self.timings.setdefault(key, Timing(label))
        t.runs.append(seconds)
        if rss is not None:
            t.rss_kb.append(rss)
        extra = f", peak RSS {rss_mb(rss):.0f} MB" if rss is not None else ""
        log(f"  {label}: {seconds:.2f} s{extra}")

    # -- the steps ------------------------------------------------------------------------

    def describe_database(self) -> None:
        db = self.args.dbname
        self.info["database"] = db
        self.info["database_bytes"] = int(self.sql(f"SELECT pg_database_size('{db}')"))
        self.info["server_version"] = self.sql("SHOW server_version")
        self.info["tables"] = int(
            self.sql(
                "SELECT count(*) FROM pg_tables"
                " WHERE schemaname NOT IN ('pg_catalog', 'information_schema')",
                db,
            )
        )
        version = subprocess.run([self.pg_dump, "--version"], capture_output=True, text=True)
        self.info["pg_dump_version"] = version.stdout.strip()
        log("warming caches: pg_dump | wc -c (untimed)")
        _, out, _ = self.runner.run(
            ["bash", "-o", "pipefail", "-c", '"$1" | wc -c', "bash", self.pg_dump],
            self.env(db),
            "warm-up pg_dump",
        )
        self.info["raw_dump_bytes"] = int(out.strip())
        log(
            f"database {db}: {mb(self.info['database_bytes'])} (pg_database_size), "
            f"raw dump {mb(self.info['raw_dump_bytes'])}, {self.info['tables']} tables"
        )

    def backups(self) -> tuple[Path, Path]:
        db, repeat = self.args.dbname, self.args.repeat
        gz = self.work / "runbook.sql.gz"
        latest: Path | None = None
        for i in range(1, repeat + 1):
            log(f"backups, run {i}/{repeat}")
            self.quiesce()
            t, _, _ = self.runner.run([self.pg_dump], self.env(db), "pg_dump > /dev/null")
            self.record("pg_dump_bare", "pg_dump > /dev/null", t)

            self.quiesce()
            gz.unlink(missing_ok=True)
            t, _, _ = self.runner.run(
                [
                    "bash",
                    "-o",
                    "pipefail",
                    "-c",
                    '"$1" | gzip > "$2"',
                    "bash",
                    self.pg_dump,
                    str(gz),
                ],
                self.env(db),
                "pg_dump | gzip > file",
            )
            self.record("runbook_backup", "pg_dump | gzip > file (runbook)", t)

            self.quiesce()
            t, out, rss = self.runner.run(
                [*self.rfbackup, "backup", "postgres", "--json"],
                self.env(db),
                "rfbackup backup postgres",
                rss=True,
            )
            self.record("rfbackup_backup", "rfbackup backup postgres", t, rss)
            result = json.loads(out)
            if latest is not None:  # keep only the newest: disk space, and one to restore
                for stale in latest.parent.glob(latest.name.split(".")[0] + "*"):
                    stale.unlink()
            latest = self.work / "backups" / result["name"]
            self.info["rfbackup_raw_bytes"] = result["raw_bytes"]
        assert latest is not None
        self.info["gzip_bytes"] = gz.stat().st_size
        self.info["rfbackup_bytes"] = latest.stat().st_size
        self.info["rfbackup_file"] = latest.name
        log(
            f"sizes: gzip {mb(self.info['gzip_bytes'])}, "
            f"rfbackup {mb(self.info['rfbackup_bytes'])} ({latest.name})"
        )
        return gz, latest

    def restores(self, gz: Path, ours: Path) -> None:
        repeat = self.args.repeat
        for i in range(1, repeat + 1):
            log(f"restores, run {i}/{repeat}")
            target = self.new_db_name("psql", i)
            self.sql(f'CREATE DATABASE "{target}"')  # not timed
            self.quiesce()
            t, _, _ = self.runner.run(
                [
                    "bash",
                    "-o",
                    "pipefail",
                    "-c",
                    'gunzip -c "$1" | "$2" -X -q -v ON_ERROR_STOP=1 --single-transaction',
                    "bash",
                    str(gz),
                    self.psql,
                ],
                self.env(target),
                "gunzip -c | psql",
            )
            self.record("runbook_restore", "gunzip -c | psql --single-transaction", t)
            self.check_restored(target)
            self.drop_db(target)

            target = self.new_db_name("rfbackup", i)
            self.quiesce()
            t, _, rss = self.runner.run(
                [*self.rfbackup, "restore", str(ours), "--yes", "--target-db", target],
                self.env(self.args.dbname),
                "rfbackup restore",
                rss=True,
            )
            self.record("rfbackup_restore", "rfbackup restore --target-db", t, rss)
            self.check_restored(target)
            self.drop_db(target)

    def check_restored(self, dbname: str) -> None:
        tables = int(
            self.sql(
                "SELECT count(*) FROM pg_tables"
                " WHERE schemaname NOT IN ('pg_catalog', 'information_schema')",
                dbname,
            )
        )
        if tables != self.info["tables"]:
            raise StepFailed(f"{dbname} has {tables} tables, the source {self.info['tables']}")

    def s3(self, gz: Path) -> None:
        from rfbackup.sandbox.seaweedfs import ThrowawayS3

        db, repeat = self.args.dbname, self.args.repeat
        aws = shutil.which("aws")
        if aws and subprocess.run([aws, "--version"], capture_output=True).returncode != 0:
            aws = None
        self.info["s3_upload_tool"] = "aws s3 cp" if aws else "boto3 upload_file (s3transfer)"
        log("starting a throwaway S3 server (SeaweedFS)")
        with ThrowawayS3() as s3:
            s3.create_bucket("bench")
            env = self.env(db, **s3.env(), RFBACKUP_REPOSITORY="s3://bench/rf")
            tmp = self.work / "s3-runbook.sql.gz"
            upload = (
                [aws, "s3", "cp", "--only-show-errors", "$1", "s3://bench/$2"]
                if aws
                else [sys.executable, "-c", UPLOAD_FILE, "$1", "bench", "$2"]
            )
            upload_sh = " ".join(a if a.startswith("$") else f"'{a}'" for a in upload)
            self.info["s3_upload_bytes"] = gz.stat().st_size
            for i in range(1, repeat + 1):
                log(f"S3, run {i}/{repeat}")
                self.quiesce()
                t, _, _ = self.runner.run(
                    [
                        "bash",
                        "-o",
                        "pipefail",
                        "-c",
                        f'"$3" | gzip > "$1" && {upload_sh}',
                        "bash",
                        str(tmp),
                        f"runbook/{i}.sql.gz",
                        self.pg_dump,
                    ],
                    env,
                    "pg_dump | gzip > tmp && upload",
                )
                self.record("s3_runbook", "pg_dump | gzip > tmp && upload", t)
                tmp.unlink(missing_ok=True)

                argv = [a.replace("$1", str(gz)).replace("$2", f"upload/{i}") for a in upload]
                t, _, _ = self.runner.run(argv, env, "upload of the gzip file")
                self.record("s3_upload_file", "upload of the runbook's file", t)

                t, _, _ = self.runner.run(
                    [sys.executable, "-c", STREAM_WRITER, str(gz), f"stream/{i}.sql.gz"],
                    env,
                    "rfbackup's S3 writer",
                )
                self.record("s3_stream_writer", "same file through rfbackup's S3 writer", t)

                self.quiesce()
                t, _, rss = self.runner.run(
                    [*self.rfbackup, "backup", "postgres", "--json"],
                    env,
                    "rfbackup backup postgres to S3",
                    rss=True,
                )
                self.record("s3_rfbackup_backup", "rfbackup backup postgres to S3", t, rss)

    # -- results --------------------------------------------------------------------------

    def targets(self) -> list[Target]:
        med = {k: t.median for k, t in self.timings.items()}
        rss = {k: t.peak_rss_kb or 0 for k, t in self.timings.items()}
        out = [
            Target(
                "backup time vs bare pg_dump",
                med["rfbackup_backup"] / med["pg_dump_bare"],
                1.25,
                "x",
                True,
            ),
            Target(
                "backup speed-up vs runbook pg_dump | gzip",
                med["runbook_backup"] / med["rfbackup_backup"],
                4,
                "x",
                False,
            ),
            Target(
                ".sql.gz size vs gzip's",
                self.info["rfbackup_bytes"] / self.info["gzip_bytes"],
                1.05,
                "x",
                True,
            ),
            Target(
                "restore time vs gunzip | psql",
                med["rfbackup_restore"] / med["runbook_restore"],
                1.15,
                "x",
                True,
            ),
            Target("backup peak RSS", rss_mb(rss["rfbackup_backup"]), RSS_LIMIT_MB, "MB", True),
            Target("restore peak RSS", rss_mb(rss["rfbackup_restore"]), RSS_LIMIT_MB, "MB", True),
        ]
        if "s3_rfbackup_backup" in med:
            stream = self.info["s3_upload_bytes"] / med["s3_stream_writer"]
            upload = self.info["s3_upload_bytes"] / med["s3_upload_file"]
            out += [
                Target("S3 writer throughput vs plain upload", stream / upload, 0.9, "x", False),
                Target(
                    "S3 backup speed-up vs runbook + upload",
                    med["s3_runbook"] / med["s3_rfbackup_backup"],
                    3,
                    "x",
                    False,
                ),
                Target(
                    "S3 backup peak RSS",
                    rss_mb(rss["s3_rfbackup_backup"]),
                    S3_RSS_LIMIT_MB,
                    "MB",
                    True,
                ),
            ]
        return out

    def results(self) -> dict[str, Any]:
        return {
            "database": self.info,
            "machine": {"cpus": os.cpu_count(), "platform": sys.platform},
            "repeat": self.args.repeat,
            "rfbackup_settings": self.settings_kept,
            "timings": {k: t.to_dict() for k, t in self.timings.items()},
            "targets": [
                {**asdict(t), "passed": t.passed, "measured": round(t.measured, 4)}
                for t in self.targets()
            ],
        }


def render(results: dict[str, Any]) -> str:
    info, timings = results["database"], results["timings"]
    lines = [
        "",
        f"database {info['database']}: {mb(info['database_bytes'])} (pg_database_size), "
        f"raw dump {mb(info['raw_dump_bytes'])}, {info['tables']} tables",
        f"server {info['server_version']}, {info['pg_dump_version']}, "
        f"{results['machine']['cpus']} CPUs, repeat {results['repeat']}"
        + (" (median)" if results["repeat"] > 1 else ""),
    ]
    if results["rfbackup_settings"]:
        lines.append(f"rfbackup settings from the environment: {results['rfbackup_settings']}")
    if not info.get("bytecode_cache"):
        lines.append("rfbackup ran without a bytecode cache (--no-bytecode-cache)")
    if info.get("generated_seconds") is not None:
        lines.append(f"dataset generated in {info['generated_seconds']:.0f} s")
    sizes = {
        "runbook_backup": info["gzip_bytes"],
        "rfbackup_backup": info["rfbackup_bytes"],
        "s3_upload_file": info.get("s3_upload_bytes"),
    }
    header = f"{'measurement':<42} {'seconds':>8}  {'runs':<22} {'peak RSS':>9}  {'output':>10}"
    lines += ["", header, "-" * len(header)]
    for key, t in timings.items():
        runs = " ".join(f"{r:.1f}" for r in t["runs_seconds"]) if len(t["runs_seconds"]) > 1 else ""
        peak = f"{rss_mb(t['peak_rss_kb']):.0f} MB" if t["peak_rss_kb"] is not None else ""
        size = mb(sizes[key]) if sizes.get(key) else ""
        lines.append(
            f"{t['label']:<42} {t['median_seconds']:>8.2f}  {runs:<22} {peak:>9}  {size:>10}"
        )
    header = f"{'target':<42} {'measured':>10}  {'limit':<10} result"
    lines += ["", header, "-" * len(header)]
    for t in results["targets"]:
        target = Target(t["name"], t["measured"], t["limit"], t["unit"], t["at_most"])
        value, limit = target.text()
        lines.append(
            f"{target.name:<42} {value:>10}  {limit:<10} {'PASS' if t['passed'] else 'FAIL'}"
        )
    return "\n".join(line.rstrip() for line in lines)


@contextmanager
def signals_as_exceptions() -> Iterator[None]:
    def raise_interrupted(signum: int, frame: FrameType | None) -> None:
        raise Interrupted(signum)

    old = {s: signal.signal(s, raise_interrupted) for s in (signal.SIGTERM, signal.SIGHUP)}
    try:
        yield
    finally:
        for s, handler in old.items():
            signal.signal(s, handler)


@contextmanager
def signals_ignored() -> Iterator[None]:
    """Cleanup must finish: a second Ctrl-C would leave a cluster or databases behind."""
    sigs = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
    old = {s: signal.signal(s, signal.SIG_IGN) for s in sigs}
    try:
        yield
    finally:
        for s, handler in old.items():
            signal.signal(s, handler)


def run(args: argparse.Namespace) -> dict[str, Any]:
    from rfbackup.sandbox import dataset
    from rfbackup.sandbox.postgres import ThrowawayPostgres

    pg: ThrowawayPostgres | None = None
    work = Path(tempfile.mkdtemp(prefix="rfbackup-bench-", dir=args.tmp_dir))
    bench = Bench(args, work)
    try:
        if args.port is None:
            log("starting a throwaway PostgreSQL cluster")
            pg = ThrowawayPostgres()
            pg.start()
            bench.conn = pg.env(args.dbname)
            pg.psql(f'CREATE DATABASE "{args.dbname}"')
            log(f"generating ~{mb(args.size)} of ResearchFlow-like data")
            t0 = time.perf_counter()
            counts = dataset.build(pg.dsn(args.dbname), args.size)
            bench.info["generated_seconds"] = round(time.perf_counter() - t0, 1)
            bench.info["generated_rows"] = counts
        else:
            if not args.password:
                raise SystemExit("--port needs --password (or PGPASSWORD in the environment)")
            bench.conn = {
                "PGHOST": "127.0.0.1",
                "PGPORT": str(args.port),
                "PGUSER": SUPERUSER,
                "PGPASSWORD": args.password,
                "PGDATABASE": args.dbname,
            }
            bench.sql("SELECT 1", args.dbname)
        bench.warm_bytecode()
        bench.describe_database()
        gz, ours = bench.backups()
        bench.restores(gz, ours)
        if args.s3:
            bench.s3(gz)
        return bench.results()
    finally:
        with signals_ignored():
            if pg is None:
                for db in list(bench.created_dbs):
                    try:
                        bench.drop_db(db)
                    except Exception as exc:
                        log(f"could not drop database {db}: {exc}")
            else:
                pg.cleanup()
            shutil.rmtree(work, ignore_errors=True)


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        description="Time rfbackup against the runbook's pg_dump | gzip and gunzip | psql.",
    )
    p.add_argument(
        "--size",
        type=parse_size,
        default=parse_size("200MB"),
        help="data to generate in a throwaway cluster, e.g. 100MB or 2GB (default 200MB)",
    )
    p.add_argument(
        "--port", type=int, help="reuse a running cluster on 127.0.0.1:PORT (no generation)"
    )
    p.add_argument(
        "--password",
        default=os.environ.get("PGPASSWORD", ""),
        help="the postgres superuser's password with --port (default: $PGPASSWORD)",
    )
    p.add_argument("--dbname", default="rf", help="the database to back up (default rf)")
    p.add_argument("--repeat", type=int, default=1, help="runs of every step; medians reported")
    p.add_argument("--s3", action="store_true", help="also time backups to S3 (SeaweedFS)")
    p.add_argument("--tmp-dir", type=Path, help="where backups are written (default: system temp)")
    p.add_argument(
        "--no-bytecode-cache",
        dest="bytecode_cache",
        action="store_false",
        help="let every rfbackup run compile its modules from source (a cold install)",
    )
    p.add_argument("--json", action="store_true", help="print the results as JSON")
    args = p.parse_args(argv)
    if args.repeat < 1:
        p.error("--repeat must be at least 1")
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", args.dbname):
        p.error("--dbname: use a plain identifier (letters, digits, underscores)")

    report: Callable[[dict[str, Any]], str] = (
        (lambda r: json.dumps(r, indent=2)) if args.json else render
    )
    try:
        with signals_as_exceptions():
            results = run(args)
    except StepFailed as exc:
        log(f"FAILED: {exc}")
        return 1
    except KeyboardInterrupt:
        log("interrupted; cleaned up")
        return 130
    except Interrupted as exc:
        log(f"{exc}; cleaned up")
        return 128 + exc.signum
    print(report(results), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
