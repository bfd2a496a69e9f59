"""Real servers for real tests: a throwaway PostgreSQL cluster, started by the tests."""

from __future__ import annotations

import contextlib
import itertools
import os
import re
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from rfbackup.sandbox import dataset
from rfbackup.sandbox.compare import table_checksums
from rfbackup.sandbox.postgres import ThrowawayPostgres
from rfbackup.sandbox.seaweedfs import ThrowawayS3

RFBACKUP = [sys.executable, "-m", "rfbackup"]
__all__ = [
    "RFBACKUP",
    "Env",
    "created_databases",
    "ddl_mark",
    "finish",
    "make_database",
    "new_bucket",
    "schema_dump",
    "table_checksums",
]
_names = itertools.count(1)
DEFAULT_SIZE = 1_500_000
TEMPLATE = "rf_template"


@pytest.fixture(scope="session")
def pg() -> Iterator[ThrowawayPostgres]:
    # log_statement=ddl: the server log is the oracle for "no database was ever created".
    with ThrowawayPostgres(settings={"log_statement": "'ddl'"}) as cluster:
        cluster.psql("CREATE ROLE app LOGIN")
        _build(cluster, TEMPLATE, DEFAULT_SIZE)
        yield cluster


def ddl_mark(pg: ThrowawayPostgres) -> int:
    """Where the server log ends now; pass it to :func:`created_databases`."""
    return (pg.root / "server.log").stat().st_size


def created_databases(pg: ThrowawayPostgres, since: int) -> list[str]:
    """Every CREATE DATABASE the server ran since ``since``, read from its own log."""
    with open(pg.root / "server.log", "rb") as fh:
        fh.seek(since)
        text = fh.read().decode(errors="replace")
    return re.findall(r"(?:statement|execute [^:\n]*): (CREATE DATABASE [^\n]*)", text, re.I)


@pytest.fixture(scope="session")
def s3() -> Iterator[ThrowawayS3]:
    with ThrowawayS3() as server:
        yield server


@pytest.fixture(scope="session")
def s3_replica() -> Iterator[ThrowawayS3]:
    """A second S3 server, with its own credentials: the other region."""
    with ThrowawayS3(
        access_key="replica-key", secret_key="replica-secret-9876543210", region="eu-west-1"
    ) as server:
        yield server


def new_bucket(server: ThrowawayS3) -> str:
    name = f"rfb-{next(_names)}-{os.getpid()}"
    server.create_bucket(name)
    return name


@dataclass
class Env:
    """A working directory and the environment a CLI run sees."""

    pg: ThrowawayPostgres
    cwd: Path
    dbname: str
    vars: dict[str, str]
    children: list[subprocess.Popen[str]] = field(default_factory=list)

    @property
    def backups(self) -> Path:
        return self.cwd / "backups"

    @property
    def log_file(self) -> Path:
        return self.cwd / "logs" / "backup.log"

    def run(
        self, *args: str, input: str | None = None, **extra: str
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*RFBACKUP, *args],
            cwd=self.cwd,
            env={**self.vars, **extra},
            input=input,
            capture_output=True,
            text=True,
            timeout=300,
        )

    def popen(self, *args: str, **extra: str) -> subprocess.Popen[str]:
        """A background run in its own process group, killed (with its children) when the
        test ends, whatever the outcome."""
        proc = subprocess.Popen(
            [*RFBACKUP, *args],
            cwd=self.cwd,
            env={**self.vars, **extra},
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        self.children.append(proc)
        return proc

    def kill_children(self) -> None:
        for proc in self.children:
            kill_group(proc)

    def sql(self, query: str, dbname: str | None = None) -> str:
        return self.pg.psql(query, dbname or self.dbname)

    def data_files(self) -> list[str]:
        """Everything in the backup folder except our lock file."""
        if not self.backups.exists():
            return []
        return sorted(p.name for p in self.backups.iterdir() if not p.name.endswith(".lock"))

    def databases(self) -> set[str]:
        return set(self.sql("SELECT datname FROM pg_database", "postgres").split())


def kill_group(proc: subprocess.Popen[str]) -> None:
    """SIGKILL a child started with start_new_session=True, and everything it started."""
    with contextlib.suppress(ProcessLookupError):  # the group may be gone already
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    for stream in (proc.stdout, proc.stderr):
        if stream is not None:
            stream.close()


def finish(proc: subprocess.Popen[str], timeout: float) -> tuple[str, str]:
    """communicate(), but a child still running after ``timeout`` is killed, not leaked."""
    try:
        return proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        kill_group(proc)
        raise


def _build(pg: ThrowawayPostgres, name: str, size: int) -> None:
    pg.psql(f"CREATE DATABASE {name}")
    dataset.build(pg.dsn(name), size)
    pg.psql("ALTER TABLE notes OWNER TO app", name)


def make_database(pg: ThrowawayPostgres, size: int = DEFAULT_SIZE) -> str:
    """A fresh copy of the sample database: cloned from the session's template when it has
    the default size (a file copy, much faster than generating the data again)."""
    name = f"rf{next(_names)}"
    if size == DEFAULT_SIZE:
        pg.psql(f"CREATE DATABASE {name} TEMPLATE {TEMPLATE} STRATEGY FILE_COPY")
    else:
        _build(pg, name, size)
    return name


def base_env(cwd: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PG", "RFBACKUP_"))}
    env.pop("DATABASE_URL", None)
    env["RFBACKUP_CONFIG"] = str(cwd / "rfbackup.toml")
    return env


@pytest.fixture
def env(pg: ThrowawayPostgres, tmp_path: Path) -> Iterator[Env]:
    dbname = make_database(pg)
    e = Env(pg, tmp_path, dbname, {**base_env(tmp_path), **pg.env(dbname)})
    yield e
    e.kill_children()


@pytest.fixture(scope="session")
def big_db(pg: ThrowawayPostgres) -> str:
    """A larger database (dumps to more than one 4 MiB compression block), read-only in tests."""
    return make_database(pg, size=30_000_000)


@pytest.fixture
def big_env(pg: ThrowawayPostgres, big_db: str, tmp_path: Path) -> Iterator[Env]:
    e = Env(pg, tmp_path, big_db, {**base_env(tmp_path), **pg.env(big_db)})
    yield e
    e.kill_children()


def schema_dump(pg: ThrowawayPostgres, dbname: str) -> str:
    out = subprocess.run(
        ["pg_dump", "--schema-only", "--no-password"],
        env={**os.environ, **pg.env(dbname)},
        capture_output=True,
        text=True,
        check=True,
    )
    # pg_dump >= 15.14 brackets its output with a random \restrict key: not part of the schema.
    return "".join(
        line
        for line in out.stdout.splitlines(keepends=True)
        if not line.startswith(("\\restrict", "\\unrestrict"))
    )


def rewrite_dump(env: Env, name: str, change: Callable[[bytes], bytes]) -> None:
    """Replace a gzip plain backup's SQL with ``change(sql)`` and make its manifest agree
    (sha256, sizes): a backup whose data differs, yet passes every storage check."""
    import gzip
    import hashlib
    import json

    path = env.backups / name
    sql = change(gzip.decompress(path.read_bytes()))
    data = gzip.compress(sql)
    path.write_bytes(data)
    manifest_path = env.backups / f"{name}.manifest.json"
    manifest = json.loads(manifest_path.read_text())
    manifest["data"].update(
        sha256=hashlib.sha256(data).hexdigest(), stored_bytes=len(data), raw_bytes=len(sql)
    )
    manifest_path.write_text(json.dumps(manifest))
