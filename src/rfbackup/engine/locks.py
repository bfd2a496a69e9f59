"""One job per repository and component: this host's flock plus the repository lease."""

from __future__ import annotations

from contextlib import AbstractContextManager
from pathlib import Path
from typing import TYPE_CHECKING

from rfbackup.lease import Lease, job
from rfbackup.locks import lock_path

if TYPE_CHECKING:
    from rfbackup.config import LockOptions
    from rfbackup.config_lean import LeanLocks
    from rfbackup.storage import Repository


def repository_lock(
    repo: Repository,
    component: str = "postgres",
    locks: LockOptions | LeanLocks | None = None,
) -> tuple[str, Path]:
    """What the lock guards (for the "already running" message) and the lock file."""
    from rfbackup.config_lean import lock_directory

    directory = locks.directory() if locks is not None else lock_directory(None)
    return f"a {component} job on {repo.url}", lock_path(repo.url, component, directory)


def component_job(
    repo: Repository, component: str, locks: LockOptions
) -> AbstractContextManager[Lease]:
    """Hold the flock and the lease of ``component`` on ``repo`` (backups, prune...)."""
    what, path = repository_lock(repo, component, locks)
    return job(repo, component, what, path, locks.lease_seconds)
