"""Where the Redis instance lives: ``REDIS_URL`` or ``REDIS_HOST``/``REDIS_PORT``/
``REDIS_PASSWORD``. Built by ``Settings.redis_target()``; the password never reaches argv."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import SecretStr

from rfbackup.errors import ConfigError

if TYPE_CHECKING:
    from rfbackup.config import Settings


@dataclass(frozen=True)
class RedisTarget:
    """A Redis instance. ``password`` never appears in ``repr``, argv, logs or manifests."""

    host: str = "127.0.0.1"
    port: int = 6379
    username: str | None = None
    password: SecretStr | None = None
    db: int | None = None  # the database named in the URL; None: all of them
    tls: bool = False
    tls_ca_file: Path | None = None  # None: the system's CA store

    @classmethod
    def from_settings(cls, s: Settings) -> RedisTarget:
        if s.redis_url is not None:
            t = cls.from_url(s.redis_url.get_secret_value(), fallback_password=s.redis_password)
            return replace(t, tls_ca_file=s.redis_tls_ca_file)
        return cls(
            host=s.redis_host or "127.0.0.1",
            port=s.redis_port or 6379,
            password=s.redis_password,
        )

    @classmethod
    def from_url(cls, url: str, fallback_password: SecretStr | None = None) -> RedisTarget:
        from urllib.parse import unquote, urlsplit

        bad = ConfigError("REDIS_URL is not a valid redis:// or rediss:// URL")
        try:
            parts = urlsplit(url)
            port = parts.port or 6379
        except ValueError:
            raise bad from None
        if parts.scheme not in ("redis", "rediss") or not parts.hostname:
            raise bad
        path = parts.path.strip("/")
        if path and not path.isdigit():
            raise ConfigError("REDIS_URL: the path must be a database number, such as /0")
        password = unquote(parts.password) if parts.password else None
        return cls(
            host=parts.hostname,
            port=port,
            username=unquote(parts.username) if parts.username else None,
            password=SecretStr(password) if password else fallback_password,
            db=int(path) if path else None,
            tls=parts.scheme == "rediss",
        )

    @property
    def display(self) -> str:
        """host:port and the databases, for messages and the lineage (no password)."""
        dbs = "all databases" if self.db is None else f"db {self.db}"
        return f"{self.host}:{self.port} ({dbs})"

    @property
    def lineage(self) -> str:
        return f"{self.host}:{self.port}/" + ("all" if self.db is None else str(self.db))


def _str_or_none(value: object) -> str | None:
    return None if value in (None, "") else str(value)
