"""Every fenced block marked ```` ```bash runnable ```` in README.md and docs/ runs, as written,
against a sandbox: a throwaway cluster with a ``researchflow`` database that archives its WAL
into the repository, one base backup, and a table ``items`` from which rows were deleted.

Blocks run in order (README, postgres-backups, pitr, then the rest), each with
``bash -euo pipefail``, ``rfbackup`` on PATH and the libpq variables set. Only the host
paths and ports an operator would change are substituted (table below), nothing else.
"""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from pitr_support import RFBACKUP_EXE, Archiving, archiving_cluster, free_port

from rfbackup.sandbox import dataset

ROOT = Path(__file__).resolve().parent.parent
FIRST = ["README.md", "docs/postgres-backups.md", "docs/pitr.md"]
BLOCK = re.compile(r"^```bash runnable\n(.*?)^```", re.M | re.S)


def doc_files() -> list[Path]:
    rest = sorted(p.relative_to(ROOT).as_posix() for p in (ROOT / "docs").glob("*.md"))
    return [ROOT / name for name in FIRST + [r for r in rest if r not in FIRST]]


def blocks() -> list[tuple[str, str]]:
    found = []
    for path in doc_files():
        text = path.read_text()
        for m in BLOCK.finditer(text):
            line = text[: m.start()].count("\n") + 1
            found.append((f"{path.relative_to(ROOT)}:{line}", m.group(1)))
    return found


BLOCKS = blocks()


@pytest.fixture(scope="module")
def sandbox() -> Iterator[tuple[Archiving, dict[str, str], dict[str, str]]]:
    with archiving_cluster() as cluster:
        cluster.sql("CREATE DATABASE researchflow")
        dataset.build(cluster.pg.dsn("researchflow"), 20_000)
        cluster.sql("CREATE ROLE app LOGIN")
        with_items = cluster.pg.dsn("researchflow")
        with psycopg.connect(with_items, autocommit=True) as conn:
            conn.execute("ALTER TABLE notes OWNER TO app")
            conn.execute("CREATE TABLE items (id int PRIMARY KEY, note text)")
            conn.execute("INSERT INTO items SELECT g, 'kept' FROM generate_series(1, 10) g")
        base = cluster.run("backup", "base")
        assert base.returncode == 0, base.stderr
        with psycopg.connect(with_items, autocommit=True) as conn:
            conn.execute("DELETE FROM items WHERE id > 6")
        cluster.switch_and_wait()
        os.symlink(ROOT / ".venv", cluster.work / ".venv")
        env = cluster.env(PGDATABASE="researchflow")
        env["PATH"] = f"{RFBACKUP_EXE.parent}:{env.get('PATH', '/usr/bin:/bin')}"
        substitutions = {
            "/srv/pg-recovered": str(cluster.new_data_dir()),
            "5433": str(free_port()),
        }
        yield cluster, env, substitutions


def test_the_docs_have_runnable_blocks() -> None:
    where = {name.split(":")[0] for name, _ in BLOCKS}
    assert {"README.md", "docs/postgres-backups.md", "docs/pitr.md"} <= where, where
    assert len(BLOCKS) >= 8


@pytest.mark.parametrize("name,block", BLOCKS, ids=[n for n, _ in BLOCKS])
def test_runnable_block(
    name: str, block: str, sandbox: tuple[Archiving, dict[str, str], dict[str, str]]
) -> None:
    cluster, env, substitutions = sandbox
    script = block
    for old, new in substitutions.items():
        script = script.replace(old, new)
    proc = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", script],
        cwd=cluster.work,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert proc.returncode == 0, f"{name} exited {proc.returncode}:\n{script}\n{proc.stderr}"
