"""Reading blobs, trees and snapshots back (restore, check, prune, list)."""

from __future__ import annotations

from typing import Any

from rfbackup.errors import ConfigError, IntegrityError, NotFound, StorageError
from rfbackup.sources.artifacts.index import Location
from rfbackup.sources.artifacts.packs import HEADER_READ, decode, open_blob, pack_key, unwrap_key
from rfbackup.sources.artifacts.store import SNAPSHOTS, Store
from rfbackup.sources.artifacts.tree import Snapshot, decode_tree, read_snapshot, snapshot_keys


def read_range(store: Store, key: str, offset: int, length: int) -> bytes:
    """``length`` bytes at ``offset`` of an object: an S3 ranged GET, or a seek in a file."""
    repo: Any = store.repo
    if hasattr(repo, "client") and hasattr(repo, "bucket"):
        try:
            resp = repo.client.get_object(
                Bucket=repo.bucket,
                Key=repo.full_key(key),
                Range=f"bytes={offset}-{offset + length - 1}",
            )
            return bytes(resp["Body"].read())
        except Exception as exc:
            code = getattr(exc, "response", {}).get("Error", {}).get("Code")
            if code in ("NoSuchKey", "404"):
                raise NotFound(f"{store.describe(key)} does not exist") from None
            if code == "InvalidRange":
                return b""
            raise StorageError(f"cannot read {store.describe(key)}: {exc}") from None
    with store.repo.open(key) as fh:
        fh.seek(offset)
        return fh.read(length)


def blob(store: Store, blob_id: bytes, loc: Location | None) -> bytes:
    where = f"chunk {blob_id.hex()[:16]}"
    if loc is None:
        raise IntegrityError(f"{where} is in no index")
    where += f" in pack {loc.pack[:16]}"
    try:
        if loc.pack not in store.pack_keys:
            unwrap_key(store, loc.pack, read_range(store, pack_key(loc.pack), 0, HEADER_READ))
        data = read_range(store, pack_key(loc.pack), loc.offset, loc.length)
    except NotFound:
        raise IntegrityError(f"{where}: the pack is missing") from None
    if len(data) != loc.length:
        raise IntegrityError(f"{where}: the pack is shorter than its index says")
    body = open_blob(store.pack_keys[loc.pack], blob_id, data, where)
    return decode(store, blob_id, body, loc.raw, where)


def tree(store: Store, entries: dict[bytes, Location], tree_id: bytes) -> list[dict[str, Any]]:
    plain = blob(store, tree_id, entries.get(tree_id))
    return decode_tree(plain, f"tree {tree_id.hex()[:16]}")


def resolve(store: Store, ref: str) -> Snapshot:
    """A snapshot by id (or a unique prefix of at least 4 characters), or ``latest``."""
    keys = snapshot_keys(store)
    if ref == "latest":
        snaps = [read_snapshot(store, k) for k in keys]
        if not snaps:
            raise NotFound("no artifact snapshots in this repository")
        return max(snaps, key=lambda s: s.time)
    if len(ref) < 4 or not all(c in "0123456789abcdef" for c in ref):
        raise ConfigError(f"{ref!r} is not a snapshot id (hex, 4 characters or more) or latest")
    hits = [k for k in keys if k[len(SNAPSHOTS) :].startswith(ref)]
    if not hits:
        raise NotFound(f"no artifact snapshot {ref}")
    if len(hits) > 1:
        raise ConfigError(f"{ref} names {len(hits)} snapshots: give more characters")
    return read_snapshot(store, hits[0])
