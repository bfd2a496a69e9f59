"""``make demo``: the main job end to end on a throwaway PostgreSQL, no configuration needed.

backup -> list -> restore into a new database -> compare, then everything is removed.
Each step runs the real ``rfbackup`` command, exactly as an operator would type it.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from rfbackup.sandbox import dataset
from rfbackup.sandbox.compare import table_checksums
from rfbackup.sandbox.postgres import ThrowawayPostgres

DB = "researchflow"


def step(title: str) -> None:
    from rfbackup.tty import bold

    print("\n" + bold(f"== {title}", sys.stdout), flush=True)


def rfbackup(workdir: Path, env: dict[str, str], *args: str) -> str:
    print(f"$ rfbackup {shlex.join(args)}", flush=True)
    proc = subprocess.run(
        [sys.executable, "-m", "rfbackup", *args],
        cwd=workdir,
        env=env,
        stdout=subprocess.PIPE,
        text=True,
        check=False,
    )
    print(proc.stdout, end="", flush=True)
    if proc.returncode != 0:
        raise SystemExit(f"demo failed: rfbackup {args[0]} exited {proc.returncode}")
    return proc.stdout


def main() -> int:
    started = time.monotonic()
    workdir = Path(tempfile.mkdtemp(prefix="rfbackup-demo-"))
    try:
        step("Starting a throwaway PostgreSQL 15 cluster")
        with ThrowawayPostgres() as pg:
            print(f"cluster on 127.0.0.1:{pg.port} (data in {pg.data_dir})")
            pg.psql(f"CREATE DATABASE {DB}")
            pg.psql("CREATE ROLE app LOGIN")
            counts = dataset.build(pg.dsn(DB), 20_000_000)
            pg.psql("ALTER TABLE notes OWNER TO app", DB)
            print("sample ResearchFlow data: " + ", ".join(f"{n} {t}" for t, n in counts.items()))
            env = {**os.environ, **pg.env(DB)}
            env.pop("DATABASE_URL", None)
            env["RFBACKUP_CONFIG"] = str(workdir / "rfbackup.toml")

            step("1. Back up (pg_dump -> gzip -> sha256 -> backups/, manifest last)")
            name = rfbackup(workdir, env, "backup", "postgres").strip()

            step("2. List backups")
            rfbackup(workdir, env, "list")

            step("3. Restore into a new database beside the original")
            rfbackup(
                workdir, env, "restore", f"backups/{name}", "--target-db", f"{DB}_restored", "--yes"
            )

            step("4. Compare every row of every table")
            original = table_checksums(pg.dsn(DB))
            restored = table_checksums(pg.dsn(f"{DB}_restored"))
            for table, digest in original.items():
                same = restored.get(table) == digest
                rows = digest.split(":")[0]
                print(f"  {table:<20} {rows:>9} rows  {'identical' if same else 'DIFFERENT'}")
            if original != restored:
                print("demo FAILED: the restored database differs", file=sys.stderr)
                return 1
            step(
                f"Done in {time.monotonic() - started:.1f} s: backup restored and identical. "
                "Cleaning up."
            )
        return 0
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
