"""Options shared by commands, and the one way a command loads its settings."""

from __future__ import annotations

import json
import sys
from typing import Annotated, Any

import typer

from rfbackup import config, logs
from rfbackup.config import Environment, Settings

EnvOption = Annotated[
    Environment | None,
    typer.Option(
        "--env", help="development, staging or production [env: RFBACKUP_ENV]", show_default=False
    ),
]
RepoOption = Annotated[
    str | None,
    typer.Option(
        "--repo",
        help="Repository (a folder); overrides RFBACKUP_REPOSITORY and RFBACKUP_BACKUP_DIR",
        show_default=False,
    ),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON on stdout.")]


def settings(env: Environment | None = None, repo: str | None = None) -> Settings:
    s = config.load(env=env, repository=repo)
    logs.setup(s.log_file)
    return s


def print_json(doc: Any) -> None:
    json.dump(doc, sys.stdout, indent=2, default=str)
    sys.stdout.write("\n")
