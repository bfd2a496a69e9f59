"""rfbackup's point-in-time recovery side by side with pgBackRest, in one run on one cluster.

    .venv/bin/python benchmarks/pitr_vs_pgbackrest.py [--size 1GB] [--segments 200] [--s3]

1. base backup: `rfbackup backup base` vs `pgbackrest backup --type=full` (zstd, process-max=2,
   start-fast), both waiting for their own WAL archive (the cluster archives into both);
2. restore: `rfbackup pitr restore --latest --data-dir D` (sha256 + backup_manifest check) vs
   `pgbackrest restore`; both restored directories are started and their row counts compared;
3. wal-push of N real segments to a local repository, as PostgreSQL's archiver would call it
   (one command per .ready file, in order, `sh -c` from the data directory), with no async
   mode for either; and, with --s3, rfbackup's wal-push into SeaweedFS (--s3-repeat runs,
   3 by default, the median counts). The segments are copies, and the cluster that wrote
   them is stopped before these timings.

Needs the Debian package pgbackrest. Prints a table and the ratios (--json for a document).

``--baseline-src DIR`` also times another version of rfbackup (a ``src`` folder, e.g. from
``git archive main src | tar -x -C /tmp/base``) for the restore and the wal-push steps, in
the same run, interleaved with this one: the table then has a "before" column.

Like benchmarks/postgres_backup.py, rfbackup runs with a bytecode cache compiled once, untimed
(``PYTHONPYCACHEPREFIX``), as an installed tool would; ``--no-bytecode-cache`` measures
rfbackup compiling its modules at every start (``PYTHONDONTWRITEBYTECODE=1`` environments).
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from rfbackup.sandbox import dataset
from rfbackup.sandbox.postgres import PG_BIN, ThrowawayPostgres, free_port

RFBACKUP = str(Path(sys.executable).with_name("rfbackup"))
WARM_IMPORTS = (
    "import importlib, pkgutil, rfbackup\n"
    "for m in pkgutil.walk_packages(rfbackup.__path__, 'rfbackup.'):\n"
    "    if not m.name.endswith('__main__'):\n"
    "        importlib.import_module(m.name)\n"
    "import zstandard, psycopg, boto3, pyrage\n"
)
PGBACKREST = shutil.which("pgbackrest") or "/usr/bin/pgbackrest"
STANZA = "bench"


def parse_size(text: str) -> int:
    units = {"KB": 10**3, "MB": 10**6, "GB": 10**9}
    for unit, mult in units.items():
        if text.upper().endswith(unit):
            return int(float(text[: -len(unit)]) * mult)
    return int(text)


def as_postgres(cmd: list[str]) -> list[str]:
    return ["runuser", "-u", "postgres", "--", *cmd] if os.geteuid() == 0 else cmd


def shared(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    os.chmod(path, 0o777)
    return path


def timed(cmd: list[str], env: dict[str, str] | None = None, cwd: Path | None = None) -> float:
    t0 = time.monotonic()
    proc = subprocess.run(cmd, env=env, cwd=cwd, capture_output=True, text=True)
    elapsed = time.monotonic() - t0
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd[:4])}... failed: {proc.stderr.strip()[-800:]}")
    return elapsed


def pgbackrest_conf(root: Path, pg: ThrowawayPostgres, data_dir: Path) -> Path:
    conf = root / "pgbackrest.conf"
    conf.write_text(
        "[global]\n"
        f"repo1-path={shared(root / 'pgbr-repo')}\n"
        "compress-type=zst\nprocess-max=2\nstart-fast=y\n"
        f"log-path={shared(root / 'pgbr-log')}\nlock-path={shared(root / 'pgbr-lock')}\n"
        f"spool-path={shared(root / 'pgbr-spool')}\n"
        "log-level-console=warn\nlog-level-file=off\n"
        f"[{STANZA}]\npg1-path={data_dir}\npg1-port={pg.port}\n"
        f"pg1-socket-path={pg.socket_dir}\npg1-user=postgres\n"
    )
    os.chmod(conf, 0o644)
    return conf


def start_and_count(data_dir: Path, port: int) -> str:
    """Start a restored copy, let it recover, count rows, stop it."""
    auto = data_dir / "postgresql.auto.conf"
    with open(auto, "a") as fh:
        fh.write(f"port = {port}\narchive_mode = 'off'\n")
    ctl = [str(PG_BIN / "pg_ctl"), "-D", str(data_dir), "-l", str(data_dir / "bench.log")]
    subprocess.run(as_postgres([*ctl, "-w", "-t", "300", "start"]), check=True, capture_output=True)
    try:
        for _ in range(300):
            if not (data_dir / "recovery.signal").exists():
                break
            time.sleep(0.5)
        time.sleep(1)
        counts = subprocess.run(
            [
                "psql",
                "-X",
                "-At",
                "-h",
                "127.0.0.1",
                "-p",
                str(port),
                "-U",
                "postgres",
                "-c",
                "SELECT count(*) FROM notes",
            ],
            env={**os.environ, "PGPASSWORD": "throwaway-secret", "PGDATABASE": "bench"},
            capture_output=True,
            text=True,
        )
        return counts.stdout.strip() or counts.stderr.strip()
    finally:
        subprocess.run(as_postgres([*ctl[:3], "-m", "fast", "-w", "stop"]), capture_output=True)


def make_wal(pg: ThrowawayPostgres, segments: int, into: Path) -> list[str]:
    """Generate ``segments`` real WAL segments (rows of random hex) and copy them, with
    .ready files, into a pg_wal-like folder."""
    first = pg.psql("SELECT pg_walfile_name(pg_current_wal_lsn())")
    pg.psql("CREATE TABLE IF NOT EXISTS walgen (v text)")
    row = " || ".join(["md5(random()::text)"] * 8)
    while True:
        pg.psql(f"INSERT INTO walgen SELECT {row} FROM generate_series(1, 100000)")
        current = pg.psql("SELECT pg_walfile_name(pg_current_wal_lsn())")
        if int(current[8:], 16) - int(first[8:], 16) > segments + 1:
            break
    names = sorted(n for n in os.listdir(pg.data_dir / "pg_wal") if len(n) == 24)
    names = [n for n in names if first < n < current][:segments]
    wal = shared(into / "pg_wal")
    shared(wal / "archive_status")
    for name in names:
        shutil.copy(pg.data_dir / "pg_wal" / name, wal / name)
        (wal / "archive_status" / f"{name}.ready").touch()
    shared(into / "global")  # pgBackRest reads the cluster's pg_control beside pg_wal
    shutil.copy(pg.data_dir / "global" / "pg_control", into / "global" / "pg_control")
    (into / "PG_VERSION").write_text((pg.data_dir / "PG_VERSION").read_text())
    subprocess.run(["chown", "-R", "postgres:postgres", str(into)], check=True)
    return names


def copy_for_postgres(src: Path, dest: Path) -> None:
    """A fresh copy of a pg_wal-like folder, owned by the postgres user (who archives it)."""
    shutil.copytree(src, dest, symlinks=True)
    subprocess.run(["chown", "-R", "postgres:postgres", str(dest)], check=True)


def code_env(env: dict[str, str], cache: Path | None, src: str | None) -> dict[str, str]:
    """``env`` for an rfbackup process: with the bytecode cache, and ``src`` first on the path."""
    env = dict(env)
    if cache is not None:
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        env["PYTHONPYCACHEPREFIX"] = str(cache)
    if src is not None:
        env["PYTHONPATH"] = src
    return env


def wait_pusher(workdir: Path) -> None:
    """Untimed: wait until a background pusher (rfbackup's pitr/pusher.py) has exited."""
    import fcntl

    lock = workdir / "pg_wal" / "rfbackup_status" / "pusher.lock"
    if not lock.exists():
        return
    with open(lock) as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)


def archiver(workdir: Path, command: str, env: dict[str, str]) -> tuple[float, int]:
    """Behave like PostgreSQL's archiver: oldest .ready first, one command at a time."""
    status = workdir / "pg_wal" / "archive_status"
    t0 = time.monotonic()
    pushed = 0
    while ready := sorted(n for n in os.listdir(status) if n.endswith(".ready")):
        name = ready[0].removesuffix(".ready")
        cmd = command.replace("%p", shlex.quote(f"pg_wal/{name}")).replace("%f", name)
        proc = subprocess.run(
            as_postgres(["sh", "-c", cmd]), cwd=workdir, env=env, capture_output=True, text=True
        )
        if proc.returncode != 0:
            raise SystemExit(f"archive command failed for {name}: {proc.stderr.strip()}")
        os.rename(status / f"{name}.ready", status / f"{name}.done")
        pushed += 1
    elapsed = time.monotonic() - t0
    wait_pusher(workdir)
    return elapsed, pushed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", default="1GB", help="database size to generate")
    parser.add_argument("--segments", type=int, default=200, help="WAL segments to push")
    parser.add_argument("--s3", action="store_true", help="also time wal-push into SeaweedFS")
    parser.add_argument(
        "--s3-repeat",
        type=int,
        default=3,
        help="S3 wal-push runs per version (the median counts; the order alternates)",
    )
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--baseline-src", help="also time this rfbackup src folder (before)")
    parser.add_argument(
        "--no-bytecode-cache",
        dest="bytecode_cache",
        action="store_false",
        help="let every rfbackup run compile its modules from source",
    )
    args = parser.parse_args()
    if args.s3_repeat < 1:
        parser.error("--s3-repeat must be at least 1")
    root = Path(tempfile.mkdtemp(prefix="rfbackup-pitr-bench-"))
    os.chmod(root, 0o755)
    cache = shared(root / "pycache") if args.bytecode_cache else None
    versions: dict[str, str | None] = {"rf": None}
    if args.baseline_src:
        versions["before"] = str(Path(args.baseline_src).resolve())
    for code in versions.values():  # compile every module once, untimed
        if cache is not None:
            subprocess.run(
                [sys.executable, "-c", WARM_IMPORTS],
                env=code_env(dict(os.environ), cache, code),
                check=True,
            )
    if cache is not None:
        subprocess.run(["chmod", "-R", "a+rwX", str(cache)], check=True)
    results: dict[str, Any] = {}
    rf_repo = shared(root / "rf-repo")
    conf_holder: dict[str, Path] = {}
    archive_cmd = (
        f"{RFBACKUP} wal-push --repo {rf_repo} %p && "
        f"{PGBACKREST} --config={root / 'pgbackrest.conf'} --stanza={STANZA} archive-push %p"
    )
    pg = ThrowawayPostgres(
        settings={
            "wal_level": "replica",
            "archive_mode": "on",
            "archive_command": "'" + archive_cmd.replace("'", "''") + "'",
            "max_wal_size": "8GB",
        },
        server_env={"RFBACKUP_PITR__ZSTD_LEVEL": "3"},
    )
    try:
        pg.start()
        conf_holder["conf"] = pgbackrest_conf(root, pg, pg.data_dir)
        conf = conf_holder["conf"]
        br = [PGBACKREST, f"--config={conf}", f"--stanza={STANZA}"]
        timed(as_postgres([*br, "stanza-create"]))
        pg.psql("CREATE DATABASE bench")
        print(f"generating {args.size} ...", file=sys.stderr)
        dataset.build(pg.dsn("bench"), parse_size(args.size))
        pg.psql("CHECKPOINT")
        results["database_bytes"] = int(
            pg.psql("SELECT sum(pg_database_size(oid)) FROM pg_database")
        )
        env = code_env(
            {**os.environ, **pg.env("bench"), "RFBACKUP_REPOSITORY": str(rf_repo)}, cache, None
        )

        print("base backups ...", file=sys.stderr)
        results["rf_backup_s"] = timed([RFBACKUP, "backup", "base"], env=env, cwd=root)
        results["br_backup_s"] = timed(as_postgres([*br, "backup", "--type=full"]))
        results["rf_backup_bytes"] = sum(
            p.stat().st_size for p in (rf_repo / "base").iterdir() if p.suffix == ".zst"
        )
        results["br_backup_bytes"] = sum(
            p.stat().st_size for p in (root / "pgbr-repo" / "backup").rglob("*") if p.is_file()
        )

        print("restores ...", file=sys.stderr)
        rf_dir = shared(root / "rf-restore") / "data"
        br_dir = shared(root / "br-restore") / "data"
        shared(br_dir)
        subprocess.run(["chown", "postgres:postgres", str(br_dir)], check=True)
        results["rf_restore_s"] = timed(
            [RFBACKUP, "pitr", "restore", "--latest", "--data-dir", str(rf_dir)], env=env, cwd=root
        )
        results["br_restore_s"] = timed(
            as_postgres(
                [
                    *br,
                    f"--pg1-path={br_dir}",
                    "restore",
                    "--type=immediate",
                    "--target-action=promote",
                ]
            )
        )
        expected = pg.psql("SELECT count(*) FROM notes", "bench")
        if "before" in versions:
            before_dir = shared(root / "before-restore") / "data"
            results["before_restore_s"] = timed(
                [RFBACKUP, "pitr", "restore", "--latest", "--data-dir", str(before_dir)],
                env=code_env(env, cache, versions["before"]),
                cwd=root,
            )
            shutil.rmtree(before_dir.parent)
        results["rows_expected"] = expected
        results["rf_rows_restored"] = start_and_count(rf_dir, free_port())
        results["br_rows_restored"] = start_and_count(br_dir, free_port())
        shutil.rmtree(rf_dir.parent)
        shutil.rmtree(br_dir.parent)

        print(f"generating {args.segments} WAL segments ...", file=sys.stderr)
        pg.psql("ALTER SYSTEM SET archive_command = '/bin/true'")
        pg.psql("SELECT pg_reload_conf()")
        src = root / "walsrc"
        names = make_wal(pg, args.segments, src)
        results["segments"] = len(names)
        results["wal_bytes"] = sum((src / "pg_wal" / n).stat().st_size for n in names)
        # the segments are copied out: stop the cluster, or the autovacuum and checkpoint that
        # the generated rows set off compete for the cores with the timed archivers below
        pg.stop()
        for who in ("rf", "br", "before"):
            copy_for_postgres(src, root / f"wal-{who}")
        br_cmd = f"{' '.join(br)} --pg1-path={root / 'wal-br'} archive-push %p"
        clean = {k: v for k, v in os.environ.items() if not k.startswith(("PG", "RFBACKUP_"))}
        for who, code in versions.items():  # rf, then pgBackRest, then the version before
            push_repo = shared(root / f"{who}-push-repo")
            rf_cmd = f"{RFBACKUP} wal-push --repo {push_repo} %p"
            results[f"{who}_push_s"], _ = archiver(
                root / f"wal-{who}", rf_cmd, code_env(clean, cache, code)
            )
            if who == "rf":
                results["br_push_s"], _ = archiver(root / "wal-br", br_cmd, clean)
        if args.s3:
            from rfbackup.sandbox.seaweedfs import ThrowawayS3

            with ThrowawayS3() as s3:
                s3.create_bucket("walbench")
                # untimed: SeaweedFS grows its first volumes for a new bucket on the first
                # write (about 0.2 s), which a bucket in service has long done
                s3.client().put_object(Bucket="walbench", Key="warm-up", Body=b"ok")
                runs: dict[str, list[float]] = {who: [] for who in versions}
                for i in range(args.s3_repeat):  # alternate the order: neither always goes first
                    order = list(versions.items())
                    for who, code in order if i % 2 == 0 else reversed(order):
                        folder = root / f"wal-s3-{who}"
                        copy_for_postgres(src, folder)
                        s3_cmd = f"{RFBACKUP} wal-push --repo s3://walbench/{who}{i} %p"
                        seconds, _ = archiver(
                            folder, s3_cmd, code_env({**clean, **s3.env()}, cache, code)
                        )
                        runs[who].append(seconds)
                        shutil.rmtree(folder)
                for who, times in runs.items():
                    results[f"{who}_push_s3_runs"] = times
                    results[f"{who}_push_s3_s"] = statistics.median(times)
    finally:
        pg.cleanup()
        shutil.rmtree(root, ignore_errors=True)

    n = int(results["segments"])
    ratios = {
        "backup_time_vs_pgbackrest": results["rf_backup_s"] / results["br_backup_s"],
        "restore_time_vs_pgbackrest": results["rf_restore_s"] / results["br_restore_s"],
        "rf_push_segments_per_s": n / results["rf_push_s"],
        "br_push_segments_per_s": n / results["br_push_s"],
    }
    if "rf_push_s3_s" in results:
        ratios["rf_push_s3_segments_per_s"] = n / results["rf_push_s3_s"]
    if "before_push_s" in results:
        ratios["before_push_segments_per_s"] = n / results["before_push_s"]
        ratios["before_restore_time_vs_pgbackrest"] = (
            results["before_restore_s"] / results["br_restore_s"]
        )
    if "before_push_s3_s" in results:
        ratios["before_push_s3_segments_per_s"] = n / results["before_push_s3_s"]
    results["load_average"] = os.getloadavg()
    if args.json:
        print(json.dumps({**results, **ratios}, indent=2))
        return
    print_table(results, ratios, n)


def print_table(results: dict[str, Any], ratios: dict[str, float], n: int) -> None:
    """Ratios are rfbackup / pgBackRest (times: lower is better; rates: higher is better).
    The "before" column is --baseline-src's figure and its ratio to pgBackRest."""
    before = "before_push_s" in results
    load = " ".join(f"{x:.1f}" for x in results["load_average"])
    print(f"database {results['database_bytes'] / 1e9:.2f} GB, {n} WAL segments, load {load}")
    head = f"{'measure':30} {'rfbackup':>9} {'pgBackRest':>10} {'ratio':>6} {'target':>7}"
    print(head + (f" {'before':>8} {'ratio':>6}" if before else ""))

    def row(label: str, ours: float, theirs: float | None, target: str, old: float | None) -> None:
        line = f"{label:30} {ours:9.2f} "
        if theirs is None:
            line += f"{'':10} {'':6} {target:>7}"
        else:
            line += f"{theirs:10.2f} {ours / theirs:6.2f} {target:>7}"
        if before and old is not None:
            line += f" {old:8.2f}"
            if theirs is not None:
                line += f" {old / theirs:6.2f}"
        print(line)

    row("base backup (s)", results["rf_backup_s"], results["br_backup_s"], "<= 1.2", None)
    row(
        "base backup restore (s)",
        results["rf_restore_s"],
        results["br_restore_s"],
        "<= 1.2",
        results.get("before_restore_s"),
    )
    print(f"{'stored bytes':30} {results['rf_backup_bytes']:9d} {results['br_backup_bytes']:10d}")
    print(
        f"{'rows (expected ' + str(results['rows_expected']) + ')':30} "
        f"{results['rf_rows_restored']:>9} {results['br_rows_restored']:>10}"
    )
    row(
        "wal-push segments/s (local)",
        ratios["rf_push_segments_per_s"],
        ratios["br_push_segments_per_s"],
        ">= 2.0",
        ratios.get("before_push_segments_per_s"),
    )
    if "rf_push_s3_segments_per_s" in ratios:
        row(
            "wal-push segments/s (S3)",
            ratios["rf_push_s3_segments_per_s"],
            None,
            ">= 10",
            ratios.get("before_push_s3_segments_per_s"),
        )
        for who in ("rf", "before"):
            if f"{who}_push_s3_runs" in results:
                each = " ".join(f"{n / s:.2f}" for s in results[f"{who}_push_s3_runs"])
                print(f"  S3 runs ({'rfbackup' if who == 'rf' else who}), segments/s: {each}")


if __name__ == "__main__":
    main()
