"""Where the PostgreSQL database lives: libpq settings, ``DATABASE_URL``, the client tools.
Built from the settings by ``Settings.postgres_target()``; the password never reaches argv."""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import SecretStr

from rfbackup.errors import ConfigError

if TYPE_CHECKING:
    from rfbackup.config import Settings


_LIBPQ_KEYS = ("host", "port", "user", "dbname")


@dataclass(frozen=True)
class PostgresTarget:
    """Where the database lives. ``password`` never appears in ``repr`` or argv."""

    host: str | None
    port: int | None
    user: str | None
    dbname: str | None
    password: SecretStr | None
    extra: tuple[tuple[str, str], ...] = ()  # other libpq keywords from DATABASE_URL (sslmode...)
    bin_dir: Path | None = None  # where the PostgreSQL client programs are; None: PATH

    @classmethod
    def from_settings(cls, s: Settings) -> PostgresTarget:
        if s.database_url is not None:
            from psycopg.conninfo import conninfo_to_dict

            try:
                parts = conninfo_to_dict(s.database_url.get_secret_value())
            except Exception:
                raise ConfigError("DATABASE_URL is not a valid PostgreSQL URL") from None
            password = parts.pop("password", None)
            port = parts.pop("port", None)
            return cls(
                host=_str_or_none(parts.pop("host", None)) or s.pghost,
                port=int(str(port)) if port else s.pgport,
                user=_str_or_none(parts.pop("user", None)) or s.pguser,
                dbname=_str_or_none(parts.pop("dbname", None)) or s.pgdatabase,
                password=SecretStr(str(password)) if password else s.pgpassword,
                extra=tuple(sorted((k, str(v)) for k, v in parts.items() if v is not None)),
                bin_dir=s.pg_bin,
            )
        return cls(s.pghost, s.pgport, s.pguser, s.pgdatabase, s.pgpassword, bin_dir=s.pg_bin)

    def with_dbname(self, dbname: str) -> PostgresTarget:
        return replace(self, dbname=dbname)

    @property
    def server(self) -> str:
        """The server for messages: ``db.example:5432``, ``/run/postgresql:5432`` (a socket
        directory) or ``local socket`` (libpq's default)."""
        host = self.host or "local socket"
        return f"{host}:{self.port}" if self.port else host

    @property
    def display(self) -> str:
        return f"{self.server}/{self.dbname or '(default database)'}"

    def connect_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for ``psycopg.connect``."""
        kw: dict[str, Any] = {k: v for k, v in self.extra}
        for key in _LIBPQ_KEYS:
            value = getattr(self, key)
            if value is not None:
                kw[key] = value
        if self.password is not None:
            kw["password"] = self.password.get_secret_value()
        kw.setdefault("connect_timeout", 10)
        return kw

    def child_env(self, base: dict[str, str] | None = None) -> dict[str, str]:
        """Environment for pg_dump / psql / pg_restore: libpq variables, secret included.

        The password travels in ``PGPASSWORD`` of the child's environment only, which other
        users cannot read (``/proc/PID/environ`` is private to the owner).
        """
        env = dict(os.environ if base is None else base)
        for key in list(env):
            if key.startswith("PG") or key == "DATABASE_URL":
                if key in ("PGPASSFILE", "PGSSLROOTCERT", "PGSERVICEFILE", "PGSYSCONFDIR"):
                    continue
                del env[key]
        mapping = {"host": "PGHOST", "port": "PGPORT", "user": "PGUSER", "dbname": "PGDATABASE"}
        for key, var in mapping.items():
            value = getattr(self, key)
            if value is not None:
                env[var] = str(value)
        if self.password is not None:
            env["PGPASSWORD"] = self.password.get_secret_value()
        extra_vars = {
            "sslmode": "PGSSLMODE",
            "sslrootcert": "PGSSLROOTCERT",
            "application_name": "PGAPPNAME",
            "connect_timeout": "PGCONNECT_TIMEOUT",
            "options": "PGOPTIONS",
        }
        for key, value in self.extra:
            if key in extra_vars:
                env[extra_vars[key]] = value
        env.setdefault("PGCONNECT_TIMEOUT", "10")
        return env


def _str_or_none(value: object) -> str | None:
    return None if value in (None, "") else str(value)
