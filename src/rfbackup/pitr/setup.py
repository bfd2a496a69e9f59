"""``rfbackup pitr setup``: the server settings that turn WAL archiving on, using our commands.

Also the helpers that write PostgreSQL settings: ``postgresql.auto.conf`` is the file
``ALTER SYSTEM`` writes, read after ``postgresql.conf``, so our values win without editing the
operator's own configuration file.
"""

from __future__ import annotations

import os
import shlex
import sys
from datetime import UTC, datetime
from pathlib import Path

from rfbackup.errors import ConfigError

ARCHIVE_TIMEOUT = "300"


def rfbackup_executable() -> Path:
    """The program archive_command runs: this rfbackup, else this Python."""
    exe = Path(sys.executable).with_name("rfbackup")
    return exe if exe.exists() else Path(sys.executable)


def rfbackup_command() -> str:
    """How PostgreSQL should invoke this very rfbackup."""
    exe = Path(sys.executable).with_name("rfbackup")
    if exe.exists():
        return shlex.quote(str(exe))
    return f"{shlex.quote(sys.executable)} -m rfbackup"


def config_file() -> Path | None:
    """The config file in use, as an absolute path, or None."""
    from rfbackup.config import config_path

    path = config_path()
    return path.resolve() if path.exists() else None


def config_prefix() -> str:
    """``RFBACKUP_CONFIG=/abs/path `` when a config file is in use: PostgreSQL runs our
    commands from the data directory, where a relative path would not resolve."""
    path = config_file()
    return f"RFBACKUP_CONFIG={shlex.quote(str(path))} " if path else ""


def absolute_url(url: str) -> str:
    return url if url.startswith("s3://") else str(Path(url.removeprefix("file://")).resolve())


def conf_quote(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "''") + "'"


def write_auto_conf(data_dir: Path, values: dict[str, str], comment: str) -> None:
    """Set ``values`` in postgresql.auto.conf (the file ALTER SYSTEM writes), replacing any
    earlier line for the same settings."""
    path = data_dir / "postgresql.auto.conf"
    old = path.read_text().splitlines() if path.exists() else []
    keep = [ln for ln in old if ln.split("=", 1)[0].strip() not in values]
    lines = [*keep, f"# {comment}"] + [f"{k} = {conf_quote(v)}" for k, v in values.items()]
    stat = path.stat() if path.exists() else None
    path.write_text("\n".join(lines) + "\n")
    if stat is not None and os.geteuid() == 0:
        os.chown(path, stat.st_uid, stat.st_gid)


def archive_settings(repo_url: str) -> dict[str, str]:
    """What postgresql.conf needs for our WAL archiving into ``repo_url``."""
    return {
        "wal_level": "replica",
        "archive_mode": "on",
        "archive_command": (
            f"{config_prefix()}{rfbackup_command()} wal-push "
            f"--repo {shlex.quote(absolute_url(repo_url))} %p"
        ),
        "archive_timeout": ARCHIVE_TIMEOUT,
    }


def apply(data_dir: Path, values: dict[str, str]) -> Path:
    """Write ``values`` into DATA_DIR/postgresql.auto.conf. PostgreSQL reads them on restart."""
    if not (data_dir / "PG_VERSION").is_file():
        raise ConfigError(f"{data_dir} is not a PostgreSQL data directory (no PG_VERSION)")
    write_auto_conf(data_dir, values, f"rfbackup pitr setup {datetime.now(UTC).isoformat()}")
    return data_dir / "postgresql.auto.conf"
