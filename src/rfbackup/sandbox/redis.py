"""A throwaway ``redis-server`` on a free port with its own directory.

Every setting, the password included, goes into a ``redis.conf`` (mode 0600) in that
directory: the server's argv is ``redis-server <conf>`` plus non-secret overrides, so no
secret ever shows in ``/proc/PID/cmdline``. Used by the tests, the benchmark, the demo and
the remote restore (which loads a snapshot into one).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

from rfbackup.sandbox.postgres import free_port

REDIS_SERVER = os.environ.get("RFBACKUP_REDIS_SERVER", "redis-server")


@dataclass
class ThrowawayRedis:
    """``with ThrowawayRedis(password="s") as r:``; the directory is removed on exit."""

    password: str | None = None
    acl_user: tuple[str, str] | None = None  # (name, password): an ACL user with all rights
    appendonly: bool = False
    renamed: dict[str, str] = field(default_factory=dict)  # {"SYNC": ""} disables SYNC
    settings: dict[str, str] = field(default_factory=dict)
    dbfilename: str = "dump.rdb"
    tls: bool = False  # serve TLS only, with a self-signed certificate for 127.0.0.1
    port: int = 0
    root: Path = Path()
    proc: subprocess.Popen[bytes] | None = None

    def __post_init__(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="rfbackup-redis-"))
        self.port = self.port or free_port()

    @property
    def conf(self) -> Path:
        return self.root / "redis.conf"

    @property
    def data_dir(self) -> Path:
        return self.root / "data"

    @property
    def log(self) -> Path:
        return self.root / "server.log"

    def write_conf(self) -> None:
        self.data_dir.mkdir(mode=0o700, exist_ok=True)
        lines = {
            "bind": "127.0.0.1",
            "port": str(self.port),
            "dir": str(self.data_dir),
            "dbfilename": self.dbfilename,
            "logfile": str(self.log),
            "daemonize": "no",
            "save": '""',
            "appendonly": "yes" if self.appendonly else "no",
            "repl-diskless-sync-delay": "0",  # tests: no 5 s wait for more replicas
            **self.settings,
        }
        if self.tls:
            self._make_certificate()
            lines |= {
                "port": "0",
                "tls-port": str(self.port),
                "tls-cert-file": str(self.cert),
                "tls-key-file": str(self.root / "tls.key"),
                "tls-ca-cert-file": str(self.cert),
                "tls-auth-clients": "no",
            }
        text = "".join(f"{k} {v}\n" for k, v in lines.items())
        if self.password is not None:
            text += f"requirepass {_quote(self.password)}\n"
        if self.acl_user is not None:
            name, pw = self.acl_user
            text += f"user {name} on >{pw} ~* &* +@all\n"
        for cmd, new in self.renamed.items():
            text += f"rename-command {cmd} {_quote(new)}\n"
        fd = os.open(self.conf, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(text)

    @property
    def cert(self) -> Path:
        """The server's self-signed certificate: the CA file a client trusts."""
        return self.root / "tls.crt"

    def _make_certificate(self) -> None:
        if self.cert.exists():
            return
        subprocess.run(
            ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
             "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
             "-keyout", str(self.root / "tls.key"), "-out", str(self.cert)],
            check=True, capture_output=True,
        )  # fmt: skip

    def start(self, *extra: str) -> ThrowawayRedis:
        """Start the server (``extra``: non-secret overrides such as ``--appendonly no``)."""
        if not self.conf.exists():
            self.write_conf()
        self.proc = subprocess.Popen(
            [REDIS_SERVER, str(self.conf), *extra],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self.wait_ready()
        return self

    def wait_ready(self, timeout: float = 60.0) -> None:
        import redis

        deadline = time.monotonic() + timeout
        while True:
            if self.proc is not None and self.proc.poll() is not None:
                tail = self.log.read_text()[-500:] if self.log.exists() else ""
                raise RuntimeError(f"redis-server exited ({self.proc.returncode}): {tail}")
            try:
                c = self.client()
                try:
                    info = c.info("persistence")
                    if not info.get("loading"):
                        return
                finally:
                    c.close()
            except (redis.ConnectionError, redis.BusyLoadingError):
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("redis-server did not become ready")
            time.sleep(0.02)

    def client(self, db: int = 0, **kw: Any) -> Any:
        import redis
        from redis.backoff import NoBackoff
        from redis.retry import Retry

        user, pw = self.acl_user if self.acl_user else (None, self.password)
        if self.tls:
            kw |= {"ssl": True, "ssl_ca_certs": str(self.cert)}
        return redis.Redis(
            host="127.0.0.1",
            port=self.port,
            db=db,
            username=user,
            password=pw,
            retry=Retry(NoBackoff(), 0),
            **kw,
        )

    def url(self, db: int | None = None) -> str:
        auth = ""
        if self.acl_user:
            auth = f"{self.acl_user[0]}:{self.acl_user[1]}@"
        elif self.password:
            auth = f":{self.password}@"
        scheme = "rediss" if self.tls else "redis"
        return f"{scheme}://{auth}127.0.0.1:{self.port}" + (f"/{db}" if db is not None else "")

    def stop(self) -> None:
        """SHUTDOWN NOSAVE, then wait for the process; kill it if it will not go."""
        if self.proc is None or self.proc.poll() is not None:
            return
        try:
            c = self.client(socket_timeout=5)
            with contextlib.suppress(Exception):
                c.shutdown(nosave=True)
            c.close()
            self.proc.wait(timeout=30)
        except Exception:
            self.kill()

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def cleanup(self) -> None:
        self.kill()
        shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> ThrowawayRedis:
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


def _quote(value: str) -> str:
    """A redis.conf string: double quotes, with backslash escapes."""
    if value == "":
        return '""'
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
