"""ROS_MODE with Docker Compose: the env file the services read is rewritten in place
(atomically, keeping its mode and every other line), then the services are re-created with
``docker compose up -d --force-recreate`` (``restart`` would keep the old environment)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from rfbackup.errors import ConfigError, ModeSwitchError

if TYPE_CHECKING:
    from rfbackup.ops.options import ModeOptions


def rewrite(text: str, key: str, value: str | None) -> str:
    """``text`` with ``key=value`` set (replacing every earlier assignment, ``export`` forms
    included), or with the key removed when ``value`` is None."""
    pattern = re.compile(rf"^\s*(?:export\s+)?{re.escape(key)}\s*=.*$")
    lines = text.splitlines()
    kept = [ln for ln in lines if not pattern.match(ln)]
    if value is not None:
        kept.append(f"{key}={value}")
    return "\n".join(kept) + ("\n" if kept else "")


def set_mode(path: Path, key: str, value: str | None) -> bool:
    """Rewrite the env file; False when it already said so (nothing written)."""
    try:
        old = path.read_text()
        mode = path.stat().st_mode & 0o7777
    except FileNotFoundError:
        if value is None:
            return False
        raise ConfigError(
            f"env file {path} does not exist (RFBACKUP_MODE__COMPOSE_ENV_FILE)"
        ) from None
    except OSError as exc:
        raise ModeSwitchError(f"cannot read {path}: {exc.strerror}") from None
    new = rewrite(old, key, value)
    if new == old:
        return False
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write(new)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return True


def command(opts: ModeOptions, docker: str = "docker") -> list[str]:
    """The `docker compose` argv that re-creates the services with the new environment."""
    argv = [docker, "compose"]
    if opts.compose_project_dir is not None:
        argv += ["--project-directory", str(opts.compose_project_dir)]
    if opts.compose_file is not None:
        argv += ["-f", str(opts.compose_file)]
    argv += ["--env-file", str(opts.compose_env_file)]
    return [*argv, "up", "-d", "--force-recreate", "--no-deps", *opts.compose_services]


def restart(opts: ModeOptions, timeout: float) -> None:
    docker = shutil.which("docker")
    if docker is None:
        raise ModeSwitchError("docker is not installed here: cannot re-create the services")
    proc = subprocess.run(command(opts, docker), capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        last = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["no output"]
        raise ModeSwitchError(f"docker compose failed: {last[0]}")
