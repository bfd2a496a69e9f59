"""Reading a stored backup back, for every source: locate -> verify -> decrypt -> decompress.

    locate (a key, a path or a bare name; exactly one backup)
      -> its signature (signing.check)
      -> its status, the data's sha256 and size, each sidecar's sha256
      -> [age identity proven to open it] -> plaintext stream handed to the source

Nothing is restored from bytes that are not provably the ones written.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from rfbackup import catalog
from rfbackup.engine.locks import repository_lock
from rfbackup.errors import ConfigError, IntegrityError, NotFound, StorageError
from rfbackup.manifest import Manifest
from rfbackup.naming import AGE_SUFFIX, MANIFEST_SUFFIX
from rfbackup.pipeline import DECOMPRESSION_ERRORS, decompressed, decompression_error, sha256_of
from rfbackup.progress import Reporter
from rfbackup.storage import Repository, read_bytes
from rfbackup.storage.local import LocalRepository

if TYPE_CHECKING:
    from rfbackup.config import Settings

# The folders a component keeps its backups in: in ``s3://bucket/prefix/FOLDER/KEY`` the
# repository is ``s3://bucket/prefix``.
COMPONENT_FOLDERS = ("postgres/", "base/", "redis/", "artifacts/", "config/", "drills/")


def _split_component(full: str) -> tuple[str, str, str]:
    """``prefix/postgres/KEY`` -> (``prefix/``, ``postgres/``, ``KEY``); no folder: ("", "", "")."""
    best = ("", "", "")
    for folder in COMPONENT_FOLDERS:
        head, sep, tail = full.rpartition(folder)
        if sep and (not head or head.endswith("/")) and len(head) >= len(best[0]):
            best = (head, sep, tail)
    return best


@dataclass
class Located:
    repo: Repository
    entry: catalog.Entry

    @property
    def key(self) -> str:
        return self.entry.name

    @property
    def manifest(self) -> Manifest | None:
        return self.entry.manifest


def locate(settings: Settings, name: str, repo_url: str | None = None) -> Located:
    """Which backup ``name`` means (docs/postgres-backups.md, "Which file is restored"):

    - ``s3://bucket/prefix/KEY``: exactly that key;
    - with ``--repo``: a key in that repository, or a bare file name (no ``/``);
    - a PATH, i.e. a name that contains ``/`` or exists on disk: exactly that file, never
      another one of the same name (with an S3 repository configured, a name with ``/``
      that is not on disk is a key in it, e.g. ``postgres/STAMP.sql.gz``);
    - otherwise a bare name in the configured repository, which must match one backup.
    """
    path = Path(name)
    if name.startswith("s3://"):
        bucket, _, full = name.removeprefix("s3://").partition("/")
        head, sep, tail = _split_component(full)
        prefix, key = (head.rstrip("/"), sep + tail) if sep else full.rpartition("/")[::2]
        repo = settings.open_repository(f"s3://{bucket}/{prefix}".rstrip("/"))
        return Located(
            repo,
            catalog.find(repo, key, repository_lock(repo, locks=settings.locks)[1], exact=True),
        )
    if repo_url is None and path.is_dir():
        raise NotFound(f"{name} is a directory, not a backup file")
    if repo_url is None and (path.is_file() or Path(name + MANIFEST_SUFFIX).is_file()):
        repo = LocalRepository(path.parent)
        return Located(
            repo,
            catalog.find(
                repo, path.name, repository_lock(repo, locks=settings.locks)[1], exact=True
            ),
        )
    repo = settings.open_repository(repo_url)
    if repo_url is None and "/" in name and isinstance(repo, LocalRepository):
        raise NotFound(
            f"no backup named {name!r}: no such file (a name with '/' is a path; "
            f"a bare name is looked up in {repo.url})"
        )
    return Located(repo, catalog.find(repo, name, repository_lock(repo, locks=settings.locks)[1]))


def identities_for(settings: Settings, loc: Located) -> list[Any]:
    """The age identities needed to read ``loc``, or [] when it is not encrypted."""
    encrypted = bool(loc.manifest and loc.manifest.encryption) or loc.key.endswith(AGE_SUFFIX)
    if not encrypted:
        return []
    path = settings.encryption.identity_file
    if path is None:
        raise ConfigError(
            f"{loc.key} is encrypted: set RFBACKUP_ENCRYPTION__IDENTITY_FILE to the age identity"
        )
    return settings.encryption.identities()


@contextmanager
def plaintext(loc: Located, raw: Any, identities: list[Any]) -> Iterator[IO[bytes]]:
    """The original dump bytes from a stored stream: decrypt (if needed), then decompress."""
    where = loc.repo.describe(loc.key)
    in_body = False
    try:
        with ExitStack() as stack:
            clear = raw
            if identities:
                from rfbackup.encryption import decrypted

                clear = stack.enter_context(decrypted(raw, identities, where))
            stream = stack.enter_context(decompressed(compression_of(loc), clear))
            in_body = True
            yield _Guarded(stream, where)  # type: ignore[misc]
            in_body = False
    except DECOMPRESSION_ERRORS as exc:
        if in_body:  # the consumer's own failure (e.g. its disk is full): not the backup's
            raise
        raise decompression_error(exc, where) from None


class _Guarded:
    """Reading the decompressed stream: a decoder's error means the backup is damaged. Only
    reads are judged so; what the consumer does with the bytes fails on its own terms."""

    def __init__(self, inner: IO[bytes], where: str) -> None:
        self.inner, self.where = inner, where

    def read(self, n: int = -1, /) -> bytes:
        try:
            return self.inner.read(n)
        except DECOMPRESSION_ERRORS as exc:
            raise decompression_error(exc, self.where) from None


def compression_of(loc: Located) -> str | None:
    if loc.manifest is not None:
        return loc.manifest.compression
    if loc.key.endswith(".gz"):
        return "gzip"
    if loc.key.endswith(".zst"):
        return "zstd"
    return None


def sidecar_key(loc: Located, record: dict[str, Any]) -> str:
    """A sidecar named in the manifest, beside its data object (wherever the pair was copied)."""
    folder = loc.key.rpartition("/")[0]
    name = str(record["key"]).rpartition("/")[2]
    return f"{folder}/{name}" if folder else name


def check_status(loc: Located) -> None:
    """Only a catalog entry that is whole may be read back; a doubt is never a verdict."""
    entry, where = loc.entry, loc.repo.describe(loc.key)
    if entry.status in ("in-progress", "abandoned"):
        raise IntegrityError(f"{where} is an unfinished write, not a backup")
    if entry.status == "unreadable":  # not a manifest-less backup: never downgrade to that
        raise StorageError(f"{where}: {entry.problem}")
    if entry.status in ("missing-data", "bad-manifest", "damaged"):
        raise IntegrityError(f"{where}: {entry.problem}")


def verify(loc: Located, m: Manifest, identities: list[Any]) -> None:
    """The data's sha256 and size, each captured sidecar's sha256, and (encrypted) that the
    identity opens it: before anything the restore would replace is touched."""
    where = loc.repo.describe(loc.key)
    with loc.repo.open(loc.key) as fh, Reporter("verifying sha256", m.data.stored_bytes) as p:
        digest, size = sha256_of(fh, p.advance)
    if digest != m.data.sha256 or size != m.data.stored_bytes:
        raise IntegrityError(
            f"{where} is corrupted: sha256 {digest[:16]}... does not match the manifest's "
            f"{m.data.sha256[:16]}..."
        )
    for record in m.sidecars:
        if not record.get("captured") or not record.get("key"):
            continue
        key = sidecar_key(loc, record)
        if hashlib.sha256(read_bytes(loc.repo, key)).hexdigest() != record.get("sha256"):
            raise IntegrityError(f"{loc.repo.describe(key)} is corrupted")
    if identities:  # a wrong key must fail here, not half way into a restore
        with loc.repo.open(loc.key) as raw, plaintext(loc, raw, identities) as stream:
            stream.read(1)


def open_verified(
    settings: Settings,
    name: str,
    *,
    component: str | None = None,
    repo_url: str | None = None,
    allow_unverified: bool = False,
) -> tuple[Located, Manifest, list[Any]]:
    """A backup with a manifest, checked end to end: where it is, its manifest, and the age
    identities that open it. ``component`` refuses a backup of another component."""
    from rfbackup import signing

    loc = locate(settings, name, repo_url)
    where = loc.repo.describe(loc.key)
    check_status(loc)
    m = loc.manifest
    if m is None:
        raise IntegrityError(f"{where} has no manifest, so it cannot be verified")
    if component is not None and m.component != component:
        raise ConfigError(f"{where} is a {m.component} backup, not a {component} one")
    signing.check(settings.signing, m, where, allow_unverified, settings.env.value)
    identities = identities_for(settings, loc)
    verify(loc, m, identities)
    return loc, m, identities
