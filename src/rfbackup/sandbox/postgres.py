"""A throwaway PostgreSQL cluster: ``initdb`` + ``pg_ctl`` on a free port under a temp dir.

``initdb`` refuses to run as root, so when we are root the server commands run as the
``postgres`` user through ``runuser``. The cluster requires a password over TCP
(scram-sha-256), like a real deployment, so tests can prove the password never leaks.
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

PG_BIN = Path(os.environ.get("RFBACKUP_PG_BIN", "/usr/lib/postgresql/15/bin"))
SUPERUSER = "postgres"
_START_ATTEMPTS = 3


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _as_postgres(cmd: list[str]) -> list[str]:
    if os.geteuid() == 0:
        return ["runuser", "-u", "postgres", "--", *cmd]
    return cmd


@dataclass
class ThrowawayPostgres:
    """Start with ``with ThrowawayPostgres() as pg:``; everything is removed on exit."""

    password: str = "throwaway-secret"
    settings: dict[str, str] = field(default_factory=dict)
    server_env: dict[str, str] = field(default_factory=dict)  # for archive_command & co.
    port: int = 0
    root: Path = Path()

    def __post_init__(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="rfbackup-pg-"))
        os.chmod(self.root, 0o755)
        if os.geteuid() == 0:
            pw = pwd.getpwnam("postgres")
            os.chown(self.root, pw.pw_uid, pw.pw_gid)
        self.port = self.port or free_port()

    @property
    def data_dir(self) -> Path:
        return self.root / "data"

    @property
    def socket_dir(self) -> Path:
        return self.root

    def env(self, dbname: str = "postgres") -> dict[str, str]:
        """libpq variables for connecting over TCP with the password."""
        return {
            "PGHOST": "127.0.0.1",
            "PGPORT": str(self.port),
            "PGUSER": SUPERUSER,
            "PGPASSWORD": self.password,
            "PGDATABASE": dbname,
        }

    def dsn(self, dbname: str = "postgres") -> str:
        return (
            f"host=127.0.0.1 port={self.port} user={SUPERUSER} "
            f"password={self.password} dbname={dbname}"
        )

    def start(self) -> ThrowawayPostgres:
        pwfile = self.root / "pwfile"
        pwfile.write_text(self.password + "\n")
        if os.geteuid() == 0:
            pw = pwd.getpwnam("postgres")
            os.chown(pwfile, pw.pw_uid, pw.pw_gid)
        os.chmod(pwfile, 0o600)
        self._run(
            [
                str(PG_BIN / "initdb"),
                "-D",
                str(self.data_dir),
                "-U",
                SUPERUSER,
                "--auth-local=trust",
                "--auth-host=scram-sha-256",
                f"--pwfile={pwfile}",
                "--encoding=UTF8",
                "--locale=C.UTF-8",
                "--no-sync",
            ]
        )
        pwfile.unlink()
        conf = {
            "port": str(self.port),
            "listen_addresses": "'127.0.0.1'",
            "unix_socket_directories": f"'{self.socket_dir}'",
            "fsync": "off",
            "full_page_writes": "off",
            "synchronous_commit": "off",
            "max_connections": "40",
            **self.settings,
        }
        with open(self.data_dir / "postgresql.conf", "a") as fh:
            for key, value in conf.items():
                fh.write(f"{key} = {value}\n")
        for attempt in range(_START_ATTEMPTS):
            try:
                self._run(
                    [
                        str(PG_BIN / "pg_ctl"),
                        "-D",
                        str(self.data_dir),
                        "-l",
                        str(self.root / "server.log"),
                        "-w",
                        "-t",
                        "60",
                        "start",
                    ],
                    env={**os.environ, **self.server_env},
                )
                return self
            except RuntimeError:
                # free_port() can only pick a port that was free a moment ago: another
                # process may have taken it since. Then try another one (the last line wins).
                if attempt + 1 == _START_ATTEMPTS or not self._port_taken():
                    raise
                self.port = free_port()
                with open(self.data_dir / "postgresql.conf", "a") as fh:
                    fh.write(f"port = {self.port}\n")
        return self

    def _port_taken(self) -> bool:
        try:
            text = (self.root / "server.log").read_text(errors="replace")
        except OSError:
            return False
        return "Address already in use" in text

    def stop(self, mode: str = "fast") -> None:
        if (self.data_dir / "postmaster.pid").exists():
            subprocess.run(
                _as_postgres(
                    [str(PG_BIN / "pg_ctl"), "-D", str(self.data_dir), "-m", mode, "-w", "stop"]
                ),
                check=False,
                capture_output=True,
            )

    def cleanup(self) -> None:
        self.stop("immediate")
        shutil.rmtree(self.root, ignore_errors=True)

    def psql(self, sql: str, dbname: str = "postgres") -> str:
        """Run SQL with psql over TCP (password from the environment) and return stdout."""
        out = subprocess.run(
            ["psql", "-X", "-q", "-At", "-v", "ON_ERROR_STOP=1", "-c", sql],
            env={**os.environ, **self.env(dbname)},
            check=True,
            capture_output=True,
            text=True,
        )
        return out.stdout.strip()

    def _run(self, cmd: list[str], env: dict[str, str] | None = None) -> None:
        proc = subprocess.run(
            _as_postgres(cmd), capture_output=True, text=True, cwd=self.root, env=env
        )
        if proc.returncode != 0:
            raise RuntimeError(f"{cmd[0]} failed: {proc.stderr.strip() or proc.stdout.strip()}")

    def __enter__(self) -> ThrowawayPostgres:
        try:
            return self.start()
        except BaseException:
            self.cleanup()
            raise

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.cleanup()
