"""A repository in a local folder.

Files are created 0600 and folders 0700: a plain dump is the whole database.
Writes go to a hidden ``.NAME.partial`` file beside the target, then fsync, rename, fsync of
the folder: after a crash either the old state or the whole new object exists, plus at worst
a ``.partial`` file that listing reports as partial and never as a backup.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

from rfbackup.errors import NotFound, PartialExists, StorageError
from rfbackup.storage.base import ObjectInfo

if TYPE_CHECKING:
    from rfbackup.storage.objectlock import Retention

PARTIAL_SUFFIX = ".partial"


def _partial_path(final: Path) -> Path:
    return final.with_name(f".{final.name}{PARTIAL_SUFFIX}")


def storage_error(exc: OSError, what: str) -> StorageError:
    if exc.errno == errno.ENOSPC:
        return StorageError(f"disk full while writing {what}")
    if exc.errno == errno.EFBIG:
        return StorageError(f"file size limit reached while writing {what}")
    reason = exc.strerror or str(exc)
    return StorageError(f"cannot write {what}: {reason}")


def private_dirs(path: Path) -> None:
    """``mkdir -p`` where every folder created is 0700 (existing ones are left alone)."""
    missing = []
    while not path.exists():
        missing.append(path)
        path = path.parent
    for folder in reversed(missing):
        folder.mkdir(mode=0o700, exist_ok=True)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class LocalWriter:
    def __init__(self, final: Path) -> None:
        self.final = final
        self.partial = _partial_path(final)
        try:
            private_dirs(final.parent)
            flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
            self._fh: BinaryIO | None = os.fdopen(os.open(self.partial, flags, 0o600), "wb")
        except FileExistsError:
            raise PartialExists(f"{self.partial} exists: another write is in progress") from None
        except OSError as exc:
            raise storage_error(exc, str(final)) from None

    def write(self, data: bytes | bytearray | memoryview) -> int:
        assert self._fh is not None, "write after commit/abort"
        try:
            return self._fh.write(data)
        except OSError as exc:
            raise storage_error(exc, str(self.final)) from None

    def commit(self) -> None:
        assert self._fh is not None, "commit twice"
        fh, self._fh = self._fh, None
        try:
            fh.flush()
            os.fsync(fh.fileno())
            fh.close()
            if self.final.exists():
                raise StorageError(f"{self.final} already exists; refusing to overwrite it")
            os.rename(self.partial, self.final)
            _fsync_dir(self.final.parent)
        except OSError as exc:
            self._discard(fh)
            raise storage_error(exc, str(self.final)) from None
        except BaseException:
            self._discard(fh)
            raise

    def abort(self) -> None:
        fh, self._fh = self._fh, None
        self._discard(fh)

    def _discard(self, fh: BinaryIO | None) -> None:
        if fh is not None:
            with contextlib.suppress(OSError):
                fh.close()
        self.partial.unlink(missing_ok=True)


class LocalRepository:
    def __init__(self, root: Path, layout: str = "flat") -> None:
        self.root = root
        self.url = str(root)
        self.layout = layout  # "component" when standing in for an S3 repository (fallback)

    def _path(self, key: str) -> Path:
        if key.startswith("/") or ".." in Path(key).parts:
            raise StorageError(f"invalid key {key!r}")
        return self.root / key

    def writer(self, key: str) -> LocalWriter:
        return LocalWriter(self._path(key))

    def put(self, key: str, data: bytes) -> None:
        w = self.writer(key)
        try:
            w.write(data)
            w.commit()
        except BaseException:
            w.abort()
            raise

    def open(self, key: str) -> BinaryIO:
        try:
            return open(self._path(key), "rb")
        except FileNotFoundError:
            raise NotFound(f"{self.describe(key)} does not exist") from None
        except OSError as exc:
            raise StorageError(f"cannot read {self.describe(key)}: {exc.strerror}") from None

    def stat(self, key: str) -> ObjectInfo | None:
        try:
            st = self._path(key).stat()
        except FileNotFoundError:
            return None
        return ObjectInfo(key, st.st_size, datetime.fromtimestamp(st.st_mtime, UTC))

    def list(self, prefix: str = "", include_partial: bool = False) -> Iterator[ObjectInfo]:
        if not self.root.is_dir():
            return
        found: list[ObjectInfo] = []
        # Walk only the folder the prefix names (wal/0000000100000000/...): a WAL archive
        # holds thousands of files, and a push lists one name.
        start = self.root / prefix.rpartition("/")[0] if "/" in prefix else self.root
        for dirpath, dirnames, filenames in os.walk(start):
            dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
            rel_dir = Path(dirpath).relative_to(self.root)
            for name in filenames:
                partial = name.startswith(".") and name.endswith(PARTIAL_SUFFIX)
                if name.startswith(".") and not (partial and include_partial):
                    continue
                key_name = name[1 : -len(PARTIAL_SUFFIX)] if partial else name
                key = str(rel_dir / key_name) if str(rel_dir) != "." else key_name
                if not key.startswith(prefix):
                    continue
                path = os.path.join(dirpath, name)
                try:
                    st = os.stat(path)
                except FileNotFoundError:
                    continue
                except OSError as exc:  # never guess what it is: stop before any decision
                    raise StorageError(f"cannot examine {path}: {exc.strerror}") from None
                modified = datetime.fromtimestamp(st.st_mtime, UTC)
                found.append(ObjectInfo(key, st.st_size, modified, partial))
        yield from sorted(found, key=lambda o: (o.key, o.partial))

    def delete(self, keys: Iterable[str]) -> None:
        for key in keys:
            path = self._path(key)
            try:
                path.unlink(missing_ok=True)
            except OSError as exc:
                raise StorageError(f"cannot delete {path}: {exc.strerror}") from None

    def discard_partial(self, key: str) -> None:
        _partial_path(self._path(key)).unlink(missing_ok=True)

    def describe(self, key: str) -> str:
        return str(self._path(key))

    # A folder has no Object Lock: these answer "no lock", and retention settings are ignored.
    def protection(self) -> None:
        return None

    def retention_policy(self) -> None:
        return None

    def object_retention(self, key: str) -> None:
        return None

    def locked_until(self, key: str, now: datetime) -> None:
        return None

    def extend_retention(self, key: str, retention: Retention) -> int:
        return 0

    def read_tagged(self, key: str) -> tuple[bytes, str] | None:
        try:
            fd = os.open(self._path(key), os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise StorageError(f"cannot read {self.describe(key)}: {exc.strerror}") from None
        with os.fdopen(fd, "rb") as fh:
            data = fh.read()
        return data, hashlib.sha256(data).hexdigest()

    def put_conditional(self, key: str, data: bytes, if_match: str | None) -> str | None:
        path = self._path(key)
        try:
            private_dirs(path.parent)
            current = self.read_tagged(key) if if_match is not None else None
            if if_match is not None and (current is None or current[1] != if_match):
                return None
            # The whole content goes to a private temp file first: a crash never leaves a
            # half-written object under the real name.
            tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            try:
                if if_match is None:
                    os.link(tmp, path)  # atomic create-if-absent
                else:
                    os.replace(tmp, path)
            except FileExistsError:
                return None
            finally:
                tmp.unlink(missing_ok=True)
            _fsync_dir(path.parent)
        except OSError as exc:
            raise storage_error(exc, str(path)) from None
        return hashlib.sha256(data).hexdigest()
