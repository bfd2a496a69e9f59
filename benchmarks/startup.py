"""Start-up cost of rfbackup commands, next to pgBackRest's, in one run.

    .venv/bin/python benchmarks/startup.py [--repeat 15] [--baseline-src DIR] [--json]

Times (median of --repeat runs, each a fresh process): ``rfbackup --help``, ``rfbackup list``
of an empty folder, and the archive_command fast path (``rfbackup wal-push`` of a segment an
earlier call already stored: what PostgreSQL runs for most segments), next to
``pgbackrest help`` (the other tool's start-up). Targets: <= 0.2 s for --help and list.

Like benchmarks/postgres_backup.py, rfbackup runs with a bytecode cache compiled once,
untimed (``--no-bytecode-cache`` to measure without). ``--baseline-src DIR`` also times
another version's src folder (the "before" column), interleaved run by run.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

RFBACKUP = str(Path(sys.executable).with_name("rfbackup"))
PGBACKREST = shutil.which("pgbackrest")


def env_for(root: Path, cache: Path | None, src: str | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PG", "RFBACKUP_"))}
    env["RFBACKUP_CONFIG"] = str(root / "absent.toml")
    env["RFBACKUP_BACKUP_DIR"] = str(root / "empty")
    env["RFBACKUP_LOG_FILE"] = str(root / "rfbackup.log")
    if cache is not None:
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        env["PYTHONPYCACHEPREFIX"] = str(cache)
    if src is not None:
        env["PYTHONPATH"] = src
    return env


def once(cmd: list[str], env: dict[str, str], cwd: Path) -> float:
    t0 = time.monotonic()
    proc = subprocess.run(cmd, env=env, cwd=cwd, capture_output=True, text=True)
    elapsed = time.monotonic() - t0
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed: {proc.stderr.strip()[-400:]}")
    return elapsed


def wal_push_fast(root: Path) -> list[str]:
    """A pg_wal with a .ready segment whose marker an earlier call left; returns the command
    (the marker is written again before every run)."""
    wal = root / "pg_wal"
    (wal / "archive_status").mkdir(parents=True, exist_ok=True)
    (wal / "rfbackup_status").mkdir(exist_ok=True)
    (wal / "000000010000000000000001").write_bytes(b"")
    (wal / "archive_status" / "000000010000000000000001.ready").touch()
    return [RFBACKUP, "wal-push", "--repo", str(root / "repo"), "pg_wal/000000010000000000000001"]


def mark(root: Path, env: dict[str, str]) -> None:
    key = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; from rfbackup.pitr.pusher import destination_key as k; "
            "print(k(sys.argv[1]))",
            str(root / "repo"),
        ],
        env=env,
        cwd=root,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    (root / "pg_wal" / "rfbackup_status" / "000000010000000000000001.pushed").write_text(key)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=15)
    parser.add_argument("--baseline-src", help="also time this rfbackup src folder (before)")
    parser.add_argument("--no-bytecode-cache", dest="bytecode_cache", action="store_false")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="rfbackup-startup-"))
    try:
        (root / "empty").mkdir()
        cache = root / "pycache" if args.bytecode_cache else None
        versions: dict[str, str | None] = {"rf": None}
        if args.baseline_src:
            versions["before"] = str(Path(args.baseline_src).resolve())
        envs = {who: env_for(root, cache, src) for who, src in versions.items()}
        commands = {
            "--help": [RFBACKUP, "--help"],
            "list (empty folder)": [RFBACKUP, "list"],
            "wal-push, already pushed": wal_push_fast(root),
        }
        times: dict[str, dict[str, list[float]]] = {c: {w: [] for w in versions} for c in commands}
        for env in envs.values():  # untimed: compile the bytecode cache
            for cmd in commands.values():
                subprocess.run(cmd, env=env, cwd=root, capture_output=True)
        other: list[float] = []
        for _ in range(args.repeat):
            for label, cmd in commands.items():
                for who, env in envs.items():
                    if label.startswith("wal-push"):
                        mark(root, envs["rf"])  # (the key does not depend on PYTHONPATH)
                    times[label][who].append(once(cmd, env, root))
            if PGBACKREST:
                other.append(once([PGBACKREST, "help"], {"PATH": os.environ["PATH"]}, root))
        result = {
            label: {who: statistics.median(runs) for who, runs in per.items()}
            for label, per in times.items()
        }
        reference = statistics.median(other) if other else None
    finally:
        shutil.rmtree(root, ignore_errors=True)
    if args.json:
        print(json.dumps({"seconds": result, "pgbackrest_help": reference}, indent=2))
        return
    load = " ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"median of {args.repeat}, load {load}, bytecode cache: {args.bytecode_cache}")
    ref = f"{reference:.3f}" if reference else "-"
    print(f"{'command':28} {'rfbackup':>9} {'before':>8} {'target':>7}  pgbackrest help {ref}")
    for label, per in result.items():
        before = f"{per['before']:8.3f}" if "before" in per else f"{'':8}"
        target = "<= 0.2" if not label.startswith("wal-push") else ""
        ratio = f"  {per['rf'] / reference:.1f}x pgbackrest help" if reference else ""
        print(f"{label:28} {per['rf']:9.3f} {before} {target:>7}{ratio}")


if __name__ == "__main__":
    main()
