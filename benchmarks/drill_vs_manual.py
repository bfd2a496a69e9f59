"""The monthly restore test: `rfbackup drill` side by side with the runbook's manual procedure
on the same backup, in one run on one throwaway cluster.

    .venv/bin/python benchmarks/drill_vs_manual.py [--size 100MB] [--json]

manual:  createdb; gunzip -c BACKUP | psql; SELECT count(*) of every table; dropdb
         (no checksum, nothing compared with the manifest or production)
rfbackup drill --component postgres: sha256, load, counts, large objects, sequences and
         materialized views against the manifest, every table read, counts and 100
         sampled rows per table compared with production, scratch database dropped, report.

Prints both times and the ratio (drill / manual), and the drill's RTO and RPO.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from rfbackup.sandbox import dataset
from rfbackup.sandbox.postgres import ThrowawayPostgres

RFBACKUP = str(Path(sys.executable).with_name("rfbackup"))


def parse_size(text: str) -> int:
    units = {"KB": 10**3, "MB": 10**6, "GB": 10**9}
    for unit, mult in units.items():
        if text.upper().endswith(unit):
            return int(float(text[: -len(unit)]) * mult)
    return int(text)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--size", default="100MB")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="rfbackup-bench-drill-"))
    with ThrowawayPostgres() as pg:
        pg.psql("CREATE DATABASE researchflow")
        dataset.build(pg.dsn("researchflow"), parse_size(args.size))
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith(("PG", "RFBACKUP_"))},
            **pg.env("researchflow"),
            "RFBACKUP_CONFIG": str(work / "rfbackup.toml"),
            "RFBACKUP_BACKUP_DIR": str(work / "backups"),
            "RFBACKUP_LOG_FILE": str(work / "backup.log"),
        }
        b = subprocess.run(
            [RFBACKUP, "backup", "postgres", "--json"], env=env, capture_output=True, text=True
        )
        assert b.returncode == 0, b.stderr
        name = json.loads(b.stdout)["name"]
        path = work / "backups" / name
        tables = pg.psql(
            "SELECT format('%I.%I', schemaname, tablename) FROM pg_tables "
            "WHERE schemaname = 'public'",
            "researchflow",
        ).split()

        t0 = time.monotonic()
        pg.psql("CREATE DATABASE drill_manual")
        load = subprocess.run(
            f"set -o pipefail; gunzip -c {path} | psql -X -q -v ON_ERROR_STOP=1 -d drill_manual",
            shell=True,
            executable="/bin/bash",
            env={**env, "PGDATABASE": "drill_manual"},
            capture_output=True,
            text=True,
        )
        assert load.returncode == 0, load.stderr
        for t in tables:
            pg.psql(f"SELECT count(*) FROM {t}", "drill_manual")
        pg.psql("DROP DATABASE drill_manual")
        manual = time.monotonic() - t0

        t0 = time.monotonic()
        d = subprocess.run(
            [RFBACKUP, "drill", "--component", "postgres", "--json"],
            env=env,
            capture_output=True,
            text=True,
        )
        drill = time.monotonic() - t0
        assert d.returncode == 0, d.stderr
        comp: dict[str, Any] = json.loads(d.stdout)["components"][0]
    doc = {
        "size": args.size,
        "backup_bytes": path.stat().st_size,
        "manual_seconds": round(manual, 2),
        "drill_seconds": round(drill, 2),
        "ratio_drill_over_manual": round(drill / manual, 2),
        "drill_rto_seconds": comp["rto_seconds"],
        "drill_rpo_seconds": comp["rpo_seconds"],
        "rows_compared": sum(t["compared"] for t in comp["facts"]["sampled_rows"].values()),
    }
    if args.json:
        print(json.dumps(doc, indent=2))
    else:
        for key, value in doc.items():
            print(f"{key:28} {value}")


if __name__ == "__main__":
    main()
