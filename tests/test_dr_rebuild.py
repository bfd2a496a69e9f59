"""``rfbackup dr rebuild`` end to end: after losing the database, the configuration and the
newest PostgreSQL backup come back from the repository alone, in order, with health checks
and the manual steps that remain; a server that still holds the data is refused."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from conftest import Env, table_checksums


def git(path: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(path), "-c", "user.name=ops", "-c", "user.email=ops@example", *args],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()


def test_rebuild_from_the_repository_alone(env: Env, tmp_path: Path) -> None:
    conf = tmp_path / "researchflow"
    (conf / "infrastructure").mkdir(parents=True)
    git(conf, "init", "-q", "-b", "main")
    (conf / "infrastructure" / "values.yaml").write_text("replicas: 2\n")
    git(conf, "add", ".")
    git(conf, "commit", "-q", "-m", "first")
    good = table_checksums(env.pg.dsn(env.dbname))
    assert env.run("backup", "postgres").returncode == 0
    assert env.run("backup", "config", "--git-repo", str(conf)).returncode == 0

    dest = tmp_path / "restored-config"
    # The database is still there, with data: refused after the config step.
    refused = env.run("dr", "rebuild", "--config-dest", str(dest), "--yes")
    assert refused.returncode == 9 and "already holds data" in refused.stderr

    env.sql(f'DROP DATABASE "{env.dbname}" WITH (FORCE)', "postgres")  # the site is gone
    r = env.run("dr", "rebuild", "--config-dest", str(dest), "--yes", "--resume", "--json")

    assert r.returncode == 0, r.stderr
    assert table_checksums(env.pg.dsn(env.dbname)) == good
    assert (dest / "infrastructure" / "values.yaml").read_text() == "replicas: 2\n"
    doc = json.loads(r.stdout)
    assert [(s["step"], s["result"]) for s in doc["steps"]] == [
        ("config", "skipped (done before)"),
        ("postgres", "done"),
        ("health", "done"),
    ]
    assert any("DNS" in line for line in doc["manual"])
