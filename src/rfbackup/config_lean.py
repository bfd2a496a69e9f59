"""The few settings a start-up-bound command reads, without pydantic (``rfbackup list``).

Loading pydantic-settings costs more than the rest of ``rfbackup list`` together. This module
holds the shared schema of those few settings (:data:`FIELDS`: names, types, defaults,
bounds), which :mod:`rfbackup.config`'s models are built from, and a reader that takes the
environment and ``rfbackup.toml`` as they are only when every ``RFBACKUP_*`` variable, every
file key and every libpq/Redis variable it meets is one of them, in its plain form (a
decimal integer within bounds, a non-empty path, an environment name). Anything else (another
setting, a value it would have to interpret, an unreadable file, an S3 repository) returns
None: the caller then loads the full :class:`rfbackup.config.Settings`, which validates
everything and gives the one error message. So both read the same values, and a bad value
fails the same way whichever reader met it first.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

PREFIX = "RFBACKUP_"
CONFIG_VAR = "RFBACKUP_CONFIG"  # names the file; read before the settings
_INT = re.compile(r"[0-9]{1,12}")


class Environment(StrEnum):
    development = "development"
    staging = "staging"
    production = "production"


ENVIRONMENTS = tuple(e.value for e in Environment)
ENV_ALIASES = {"prod": "production", "stage": "staging", "dev": "development"}  # for --env


def env_name(text: str) -> str | None:
    """The environment ``--env TEXT`` names (a full name, or prod / stage / dev), or None."""
    name = ENV_ALIASES.get(text.strip().lower(), text.strip().lower())
    return name if name in ENVIRONMENTS else None


@dataclass(frozen=True)
class Spec:
    """One setting: its type (str, int, Path or Environment), default and bounds."""

    kind: type
    default: Any = None
    ge: int | None = None
    le: int | None = None

    def parse(self, raw: object) -> tuple[bool, Any]:
        """(True, value) when ``raw`` is plainly valid, else (False, None): ask pydantic."""
        if isinstance(raw, bool) or raw is None or raw == "":
            return False, None
        if self.kind is int:
            if isinstance(raw, str) and _INT.fullmatch(raw):
                raw = int(raw)
            if not isinstance(raw, int):
                return False, None
            if (self.ge is not None and raw < self.ge) or (self.le is not None and raw > self.le):
                return False, None
            return True, raw
        if not isinstance(raw, str):
            return False, None
        if self.kind is Environment:
            return (True, Environment(raw)) if raw in Environment.__members__ else (False, None)
        return True, (Path(raw) if self.kind is Path else raw)


# The settings rfbackup list reads, by path (RFBACKUP_LOCKS__DIR, [locks] dir = ...).
FIELDS: dict[tuple[str, ...], Spec] = {
    ("env",): Spec(Environment, Environment.development),
    ("backup_dir",): Spec(Path, Path("backups")),
    ("repository",): Spec(str),
    ("log_file",): Spec(Path, Path("logs/backup.log")),
    ("locks", "dir"): Spec(Path),  # must be owned by the user, mode 0700
    ("locks", "lease_seconds"): Spec(int, 300, ge=3, le=86400),  # renewed every third
}
# Read without our prefix (libpq and Redis conventions); any case, like pydantic-settings.
ALIASED: dict[str, Spec] = {
    "database_url": Spec(str),
    "pghost": Spec(str),
    "pgport": Spec(int),
    "pguser": Spec(str),
    "pgpassword": Spec(str),
    "pgdatabase": Spec(str),
    "redis_url": Spec(str),
    "redis_host": Spec(str),
    "redis_port": Spec(int),
    "redis_password": Spec(str),
    "redis_tls_ca_file": Spec(Path),
}


def lock_directory(folder: Path | None) -> Path:
    """Default: /run/rfbackup for root, else $XDG_STATE_HOME/rfbackup/locks
    (~/.local/state/rfbackup/locks): private to the user, the same under cron and a login."""
    if folder is not None:
        return folder
    if os.geteuid() == 0:
        return Path("/run/rfbackup")
    state = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(state) / "rfbackup" / "locks"


def config_path() -> Path:
    """The configuration file: ``RFBACKUP_CONFIG``, else ``rfbackup.toml`` here."""
    return Path(os.environ.get(CONFIG_VAR, "rfbackup.toml"))


@dataclass(frozen=True)
class LeanLocks:
    dir: Path | None
    lease_seconds: int

    def directory(self) -> Path:
        return lock_directory(self.dir)


@dataclass(frozen=True)
class LeanSettings:
    """The part of Settings that ``rfbackup list`` of a local repository uses."""

    env: Environment
    backup_dir: Path
    repository: str | None
    log_file: Path | None
    locks: LeanLocks

    @property
    def primary_repository(self) -> str:
        return self.repository or str(self.backup_dir)

    def open_repository(self, url: str | None = None) -> Any:
        from rfbackup.storage import open_repository

        return open_repository(url or self.primary_repository)


def _file_values() -> dict[tuple[str, ...], object] | None:
    """The file's settings by path ({} without a file), or None when any is not ours."""
    import tomllib

    try:
        with config_path().open("rb") as fh:
            doc = tomllib.load(fh)
    except (FileNotFoundError, IsADirectoryError):
        return {}
    except (OSError, tomllib.TOMLDecodeError):
        return None
    found: dict[tuple[str, ...], object] = {}
    for key, value in doc.items():
        if isinstance(value, dict):
            for sub, inner in value.items():
                found[(key, sub)] = inner
        else:
            found[(key,)] = value
    return found if all(path in FIELDS for path in found) else None


def _environment_values() -> dict[tuple[str, ...], str] | None:
    found: dict[tuple[str, ...], str] = {}
    aliased: set[str] = set()
    for var, value in os.environ.items():
        lower = var.lower()
        if lower in ALIASED:
            if lower in aliased or not ALIASED[lower].parse(value)[0]:
                return None  # two spellings, or a value to interpret
            aliased.add(lower)
            continue
        if not var.upper().startswith(PREFIX) or var.upper() == CONFIG_VAR:
            continue
        path = tuple(lower[len(PREFIX) :].split("__"))
        if path not in FIELDS or path in found:
            return None
        found[path] = value
    return found


def load(env: str | None = None, repository: str | None = None) -> LeanSettings | None:
    """The settings, or None when only the full Settings can read this configuration.
    ``env`` and ``repository`` are command-line values (None = not given)."""
    from_env = _environment_values()
    from_file = _file_values() if from_env is not None else None
    if from_env is None or from_file is None:
        return None
    given: dict[tuple[str, ...], object] = {**from_file, **from_env}
    if env is not None:
        given[("env",)] = env
    if repository is not None:
        given[("repository",)] = repository
    values: dict[tuple[str, ...], Any] = {}
    for path, spec in FIELDS.items():
        if path not in given:
            values[path] = spec.default
            continue
        ok, values[path] = spec.parse(given[path])
        if not ok:
            return None
    url = values[("repository",)]
    if url is not None:
        from rfbackup.errors import ConfigError
        from rfbackup.storage import check_url

        try:
            url = check_url(url)
        except ConfigError:
            return None
    settings = LeanSettings(
        env=values[("env",)],
        backup_dir=values[("backup_dir",)],
        repository=url,
        log_file=values[("log_file",)],
        locks=LeanLocks(values[("locks", "dir")], values[("locks", "lease_seconds")]),
    )
    if settings.primary_repository.startswith("s3://"):
        return None  # S3 settings and Object Lock: the full Settings (boto3 loads anyway)
    return settings
