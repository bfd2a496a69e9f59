"""config_lean.py (rfbackup list without pydantic) reads what config.py reads, or hands over.

For each environment: either both readers give the same values, or the lean one declines and
the full Settings decides (then the error, if any, is the full one's, word for word).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from rfbackup import config, config_lean
from rfbackup.errors import ConfigError

READ = ["env", "backup_dir", "repository", "log_file"]
FAST = [  # the lean reader answers these itself
    ({}, ""),
    (
        {
            "RFBACKUP_ENV": "production",
            "RFBACKUP_BACKUP_DIR": "/srv/b",
            "RFBACKUP_LOCKS__DIR": "/tmp/l",
            "RFBACKUP_LOCKS__LEASE_SECONDS": "60",
            "PGPORT": "5433",
            "PGHOST": "db",
        },
        "",
    ),
    ({"rfbackup_env": "staging", "RFBACKUP_REPOSITORY": "file:///srv/r"}, ""),
    (
        {"RFBACKUP_BACKUP_DIR": "env-wins"},
        'env = "staging"\nbackup_dir = "b"\n[locks]\nlease_seconds = 10\n',
    ),
]
HANDED_OVER = [  # the full Settings decides: same values, or the same error
    ({"RFBACKUP_LOCKS__LEASE_SECONDS": "2"}, ""),
    ({"RFBACKUP_LOCKS__LEASE_SECONDS": "abc"}, ""),
    ({"RFBACKUP_LOCKS__LEASE_SECONDS": " 50"}, ""),
    ({"RFBACKUP_ENV": "Staging"}, ""),
    ({"RFBACKUP_BAKUP_DIR": "x"}, ""),
    ({"PGPORT": "x"}, ""),
    ({"RFBACKUP_PITR__KEEP_DAYS": "abc"}, ""),
    ({"RFBACKUP_PITR__KEEP_DAYS": "3"}, ""),
    ({"RFBACKUP_REPOSITORY": "s3:/bad"}, ""),
    ({"RFBACKUP_REPOSITORY": "s3://bucket/x"}, ""),
    ({"RFBACKUP_LOCKS": '{"dir": "/x"}'}, ""),
    ({}, "env = 'production'\n[locks\n"),
    ({}, "[locks]\nlease_second = 10\n"),
    ({}, "[locks]\nlease_seconds = 10.5\n"),
    ({}, "env = 3\n"),
]


@pytest.fixture
def environ(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Any:
    import os

    def apply(env: dict[str, str], toml: str) -> None:
        for var in list(os.environ):
            if var.upper().startswith(("RFBACKUP_", "PG", "REDIS_", "DATABASE_URL")):
                monkeypatch.delenv(var)
        (tmp_path / "rfbackup.toml").write_text(toml)
        monkeypatch.setenv("RFBACKUP_CONFIG", str(tmp_path / "rfbackup.toml"))
        for var, value in env.items():
            monkeypatch.setenv(var, value)

    return apply


def outcome(read: Any) -> Any:
    try:
        s = read()
    except ConfigError as exc:
        return ("error", str(exc))
    values = [getattr(s, k) for k in READ]
    return [*values, s.locks.dir, s.locks.lease_seconds, s.locks.directory()]


@pytest.mark.parametrize(("env", "toml"), FAST)
@pytest.mark.parametrize("cli", [{}, {"env": "development", "repository": "/srv/cli"}])
def test_lean_reader_agrees(environ: Any, env: dict[str, str], toml: str, cli: Any) -> None:
    environ(env, toml)
    assert config_lean.load(**cli) is not None
    assert outcome(lambda: config_lean.load(**cli)) == outcome(lambda: config.load(**cli))


@pytest.mark.parametrize(("env", "toml"), HANDED_OVER)
def test_lean_reader_hands_over(environ: Any, env: dict[str, str], toml: str) -> None:
    environ(env, toml)
    assert config_lean.load() is None
    lean_path = outcome(lambda: config_lean.load() or config.load())
    assert lean_path == outcome(config.load)


def test_schema_is_shared() -> None:
    """Every libpq/Redis variable Settings reads without our prefix is known to the lean
    reader with the same type, and its defaults are Settings' defaults."""
    aliased = {n for n, f in config.Settings.model_fields.items() if f.validation_alias}
    assert aliased == set(config_lean.ALIASED)
    for name in aliased:
        annotation = str(config.Settings.model_fields[name].annotation)
        assert ("int" in annotation) == (config_lean.ALIASED[name].kind is int), name
    for path, spec in config_lean.FIELDS.items():
        model: Any = config.Settings
        for part in path[:-1]:
            model = model.model_fields[part].annotation
        assert model.model_fields[path[-1]].default == spec.default, path


def test_list_loads_no_heavy_library(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    code = (
        "import sys\n"
        "import rfbackup.catalog, rfbackup.naming\n"
        "assert 'rfbackup.config' not in sys.modules\n"
        "from rfbackup.cli.lean import list_command\n"
        f"assert list_command(['--repo', {str(tmp_path / 'empty')!r}]) == 0\n"
        "heavy = {'pydantic', 'typer', 'boto3', 'pyrage', 'rich', 'zstandard'}\n"
        "print(sorted(heavy & set(sys.modules)))\n"
    )
    env = {"RFBACKUP_CONFIG": str(tmp_path / "none.toml"), "PATH": "/usr/bin:/bin"}
    env["RFBACKUP_LOG_FILE"] = str(tmp_path / "log")
    r = subprocess.run(
        [sys.executable, "-c", code], env=env, cwd=tmp_path, capture_output=True, text=True
    )
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "[]"
    assert "no backups in" in r.stderr
