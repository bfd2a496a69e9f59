"""The checks of ``pg_verifybackup --no-parse-wal``, done on the files as they are extracted.

PostgreSQL's ``backup_manifest`` lists every file of the base backup with its size and a
checksum (CRC32C unless the backup asked for another). ``pg_verifybackup`` re-reads the whole
restored directory to check it; here the checksums are computed while each file is written,
so the data is read once. What is checked, as ``pg_verifybackup`` does:

- the manifest's own SHA-256 (its last line) over everything before that line;
- every file the manifest lists is present, a regular file, of the listed size, and has the
  listed checksum (files with another algorithm than CRC32C are re-read from disk);
- no file is present that the manifest does not list, except those PostgreSQL ignores:
  ``backup_manifest``, ``pg_wal/`` (WAL is checked by our own chain check),
  ``postgresql.auto.conf``, ``recovery.signal`` and ``standby.signal``.

The data directory was empty before extraction, so what the tar held is what is on disk.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import crc32c

from rfbackup.errors import IntegrityError

MANIFEST = "backup_manifest"
IGNORED = ("backup_manifest", "pg_wal", "postgresql.auto.conf", "recovery.signal", "standby.signal")
_SHA = {"SHA224": "sha224", "SHA256": "sha256", "SHA384": "sha384", "SHA512": "sha512"}


@dataclass
class Written:
    """A file as it was extracted: its size and the CRC32C of its bytes."""

    size: int
    crc: int


def crc32c_hex(crc: int) -> str:
    """PostgreSQL writes the CRC32C as the bytes of the uint32 in memory (little-endian)."""
    return crc.to_bytes(4, "little").hex()


def _ignored(path: str) -> bool:
    return any(path == name or path.startswith(name + "/") for name in IGNORED)


def _manifest_files(text: bytes) -> list[dict[str, Any]]:
    try:
        body = text.rstrip(b"\n")
        cut = body.rfind(b"\n")
        if cut < 0:
            raise ValueError("one line")
        doc = json.loads(text)
        expected = str(doc["Manifest-Checksum"]).lower()
        files = doc["Files"]
        if doc.get("PostgreSQL-Backup-Manifest-Version") not in (1, 2) or not isinstance(
            files, list
        ):
            raise ValueError("unknown version")
    except (ValueError, KeyError, TypeError):
        raise IntegrityError("backup_manifest is not a readable backup manifest") from None
    if hashlib.sha256(text[: cut + 1]).hexdigest() != expected:
        raise IntegrityError("backup_manifest: manifest checksum mismatch")
    return files


def _path_of(entry: dict[str, Any]) -> str:
    if "Path" in entry:
        return str(entry["Path"])
    try:
        return bytes.fromhex(str(entry["Encoded-Path"])).decode("utf-8", "surrogateescape")
    except (KeyError, ValueError):
        raise IntegrityError("backup_manifest: a file has no readable path") from None


def _digest_on_disk(path: Path, algorithm: str) -> str:
    h = hashlib.new(algorithm)
    with open(path, "rb") as fh:
        while chunk := fh.read(1024 * 1024):
            h.update(chunk)
    return h.hexdigest()


def check(data_dir: Path, written: dict[str, Written], manifest: bytes | None) -> None:
    """Raise IntegrityError on the first difference between the files and the manifest."""
    if manifest is None:
        raise IntegrityError("the base backup holds no backup_manifest to verify its files")
    listed: set[str] = set()
    for entry in _manifest_files(manifest):
        path = _path_of(entry)
        listed.add(path)
        got = written.get(path)
        if got is None:
            raise IntegrityError(f'"{path}" is present in the manifest but not on disk')
        try:
            size = int(entry["Size"])
        except (KeyError, ValueError, TypeError):
            raise IntegrityError(f"backup_manifest: no size for {path!r}") from None
        if got.size != size:
            raise IntegrityError(
                f'"{path}" has size {got.size} on disk but size {size} in the manifest'
            )
        algorithm = str(entry.get("Checksum-Algorithm", "NONE")).upper()
        if algorithm == "NONE":
            continue
        expected = str(entry.get("Checksum", "")).lower()
        if algorithm == "CRC32C":
            actual = crc32c_hex(got.crc)
        elif algorithm in _SHA:
            actual = _digest_on_disk(data_dir / path, _SHA[algorithm])
        else:
            raise IntegrityError(f"backup_manifest: unknown checksum algorithm {algorithm!r}")
        if actual != expected:
            raise IntegrityError(f'checksum mismatch for file "{path}"')
    for path in sorted(written):
        if path not in listed and not _ignored(path):
            raise IntegrityError(f'"{path}" is present on disk but not in the manifest')


def crc_update(crc: int, data: bytes | memoryview) -> int:
    return int(crc32c.crc32c(data, crc))
