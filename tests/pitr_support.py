"""A PostgreSQL cluster that archives its WAL with ``rfbackup wal-push``, and the helpers the
point-in-time recovery tests share."""

from __future__ import annotations

import os
import pwd
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import psycopg
from conftest import base_env

from rfbackup.sandbox.postgres import PG_BIN, ThrowawayPostgres, free_port

RFBACKUP_EXE = Path(sys.executable).with_name("rfbackup")


def shared_dir(prefix: str) -> Path:
    """A temporary folder the postgres user can write (pytest's tmp_path is private to root)."""
    path = Path(tempfile.mkdtemp(prefix=prefix))
    os.chmod(path, 0o755)
    if os.geteuid() == 0:
        pw = pwd.getpwnam("postgres")
        os.chown(path, pw.pw_uid, pw.pw_gid)
    return path


@dataclass
class Archiving:
    """A cluster with archive_command = rfbackup wal-push into ``repo``."""

    repo: str
    server_env: dict[str, str]
    work: Path
    pg: ThrowawayPostgres = field(init=False)
    recovered: list[Path] = field(default_factory=list)

    def start(self) -> Archiving:
        command = f"{shlex.quote(str(RFBACKUP_EXE))} wal-push --repo {shlex.quote(self.repo)} %p"
        self.pg = ThrowawayPostgres(
            settings={
                "wal_level": "replica",
                "archive_mode": "on",
                "archive_command": "'" + command.replace("'", "''") + "'",
                "max_wal_senders": "4",
            },
            server_env=self.server_env,
        )
        self.pg.start()
        return self

    def cleanup(self) -> None:
        for data_dir in self.recovered:
            stop_server(data_dir)
        self.pg.cleanup()
        shutil.rmtree(self.work, ignore_errors=True)

    def env(self, **extra: str) -> dict[str, str]:
        return {
            **base_env(self.work),
            **self.server_env,
            **self.pg.env(),
            "RFBACKUP_REPOSITORY": self.repo,
            "RFBACKUP_PITR__ARCHIVE_WAIT_SECONDS": "60",
            **extra,
        }

    def run(self, *args: str, **extra: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(RFBACKUP_EXE), *args],
            cwd=self.work,
            env=self.env(**extra),
            capture_output=True,
            text=True,
            timeout=600,
        )

    def sql(self, query: str, port: int | None = None) -> str:
        dsn = (
            self.pg.dsn()
            if port is None
            else self.pg.dsn().replace(f"port={self.pg.port}", f"port={port}")
        )
        with psycopg.connect(dsn, autocommit=True) as conn:
            cur = conn.execute(query)
            if cur.description is None:
                return ""
            return "\n".join("|".join(str(v) for v in row) for row in cur.fetchall())

    def switch_and_wait(self, port: int | None = None, timeout: float = 60) -> str:
        """Close the current segment and wait until the archiver has pushed it."""
        segment = self.sql("SELECT pg_walfile_name(pg_switch_wal())", port)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            done = self.sql("SELECT coalesce(last_archived_wal, '') FROM pg_stat_archiver", port)
            if done and done[:24] >= segment:
                return segment
            time.sleep(0.2)
        failed = self.sql("SELECT last_failed_wal FROM pg_stat_archiver", port)
        raise AssertionError(f"{segment} was not archived (last failed: {failed})")

    def new_data_dir(self) -> Path:
        data_dir = shared_dir("rfbackup-pitr-data-") / "data"
        self.recovered.append(data_dir)
        return data_dir


@contextmanager
def archiving_cluster(repo: str | None = None, **server_env: str) -> Iterator[Archiving]:
    work = shared_dir("rfbackup-pitr-")
    if repo is None:
        (work / "repo").mkdir()
        os.chmod(work / "repo", 0o777)  # root takes base backups, postgres pushes WAL
        repo = str(work / "repo")
    cluster = Archiving(repo, dict(server_env), work)
    try:
        yield cluster.start()
    finally:
        cluster.cleanup()


def stop_server(data_dir: Path) -> None:
    if (data_dir / "postmaster.pid").exists():
        cmd = [str(PG_BIN / "pg_ctl"), "-D", str(data_dir), "-m", "immediate", "-w", "stop"]
        if os.geteuid() == 0:
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        subprocess.run(cmd, capture_output=True, check=False)
    shutil.rmtree(data_dir.parent, ignore_errors=True)


def utc_now() -> str:
    return datetime.now(UTC).isoformat()


__all__ = [
    "Archiving",
    "archiving_cluster",
    "base_env",
    "free_port",
    "shared_dir",
    "stop_server",
    "utc_now",
]
