"""From settings to a job: open the store, hold the lease, run backup / restore / check / prune."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from rfbackup.errors import ConfigError, SourceError
from rfbackup.sources.artifacts import COMPONENT, store
from rfbackup.sources.artifacts.keys import WriterKey
from rfbackup.sources.artifacts.tree import Snapshot

if TYPE_CHECKING:
    from rfbackup.config import Settings


def _recipients(s: Settings) -> list[Any]:
    from rfbackup.encryption import parse_recipients

    keys = parse_recipients(s.encryption.recipient_keys())
    if not keys:
        raise ConfigError(
            "artifact backups are always encrypted: set RFBACKUP_ENCRYPTION__RECIPIENTS "
            "(age1... public keys) or RFBACKUP_ENCRYPTION__RECIPIENTS_FILE"
        )
    return keys


def _key_file(s: Settings) -> Path:
    if s.artifacts.key_file is None:
        raise ConfigError(
            "set RFBACKUP_ARTIFACTS__KEY_FILE to the writer key made by `rfbackup artifacts init`"
        )
    return s.artifacts.key_file


def _lease(s: Settings, repo: Any) -> Any:
    from rfbackup.engine.locks import component_job

    return component_job(repo, COMPONENT, s.locks)


def init(s: Settings) -> tuple[str, Path]:
    """Create the artifacts area and the writer key file (never over an existing one)."""
    path = _key_file(s)
    if path.exists():
        raise ConfigError(f"{path} exists: refusing to overwrite a key file")
    repo = s.open_repository()
    with _lease(s, repo):
        key = store.initialize(repo, _recipients(s), s.artifacts.chunk_size_kb * 1024)
    key.save(path)
    return key.repo_id, path


def writer(s: Settings, repo: Any) -> store.Store:
    return store.open_writer(repo, WriterKey.load(_key_file(s)), _recipients(s))


def reader(s: Settings, repo: Any | None = None) -> store.Store:
    repo = repo or s.open_repository()
    key_file = s.artifacts.key_file
    own = WriterKey.load(key_file) if key_file is not None and key_file.exists() else None
    return store.open_reader(repo, s.encryption.identities(), own)


def backup(s: Settings, paths: list[Path]) -> Snapshot:
    from rfbackup.sources.artifacts.backup import Options, run_backup

    chosen = [Path(p).absolute() for p in (paths or s.artifacts.paths)]
    if not chosen:
        raise ConfigError("no paths to back up: give PATH... or set RFBACKUP_ARTIFACTS__PATHS")
    names = [p.name for p in chosen]
    if len(set(names)) != len(names) or "" in names:
        raise ConfigError(
            "the paths must have distinct last components (they name the top folders)"
        )
    for p in chosen:
        if not p.exists() and not p.is_symlink():
            raise SourceError(f"{p} does not exist")
    repo = s.open_repository()
    st = writer(s, repo)
    options = Options(s.artifacts.pack_size_mb * 1024 * 1024, s.artifacts.zstd_level)
    with _lease(s, repo):
        return run_backup(st, chosen, options)


def check(s: Settings, subset: float) -> Any:
    from rfbackup.sources.artifacts.check import check as run_check

    return run_check(reader(s), subset)


def prune(s: Settings, policy: Any, dry_run: bool) -> Any:
    from rfbackup.encryption import parse_recipients
    from rfbackup.sources.artifacts.prune import prune as run_prune

    st = reader(s)
    st.recipients = parse_recipients(s.encryption.recipient_keys())  # for repacking
    pack_size = s.artifacts.pack_size_mb * 1024 * 1024
    if dry_run:
        return run_prune(st, policy, True, s.artifacts.zstd_level, pack_size)
    with _lease(s, st.repo):
        return run_prune(st, policy, False, s.artifacts.zstd_level, pack_size)
