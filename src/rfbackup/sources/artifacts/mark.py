"""Marking: every tree and chunk the given snapshots use (prune's mark phase, check)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from rfbackup.errors import IntegrityError, RfBackupError
from rfbackup.sources.artifacts import reader
from rfbackup.sources.artifacts.index import Location
from rfbackup.sources.artifacts.store import Store
from rfbackup.sources.artifacts.tree import Snapshot

_NAMED = 3  # paths remembered per chunk, to name the files a damaged chunk breaks


@dataclass
class Marked:
    trees: set[bytes] = field(default_factory=set)
    chunks: dict[bytes, list[str]] = field(default_factory=dict)  # chunk -> a few paths
    problems: list[str] = field(default_factory=list)  # unreadable trees, missing chunks

    @property
    def used(self) -> set[bytes]:
        return self.trees | set(self.chunks)


def mark(
    store: Store, entries: dict[bytes, Location], snaps: Iterable[Snapshot], strict: bool
) -> Marked:
    """``strict`` (prune): the first tree that cannot be read raises, so nothing is deleted
    on doubt. Otherwise (check) every problem is collected."""
    m = Marked()
    for snap in snaps:
        stack = [(bytes.fromhex(snap.root), f"{snap.id[:8]}:")]
        while stack:
            tree_id, where = stack.pop()
            if tree_id in m.trees:
                continue
            m.trees.add(tree_id)
            try:
                items = reader.tree(store, entries, tree_id)
            except RfBackupError as exc:
                if strict or not isinstance(exc, IntegrityError):
                    raise
                m.problems.append(f"{where} {exc}")
                continue
            for e in items:
                path = f"{where}{'' if where.endswith(':') else '/'}{e['name']}"
                if e["type"] == "dir":
                    stack.append((e["subtree_id"], path))
                elif e["type"] == "file":
                    for cid in e["chunk_ids"]:
                        paths = m.chunks.setdefault(cid, [])
                        if len(paths) < _NAMED:
                            paths.append(path)
    missing = [c for c in m.chunks if c not in entries]
    for cid in missing:
        message = f"chunk {cid.hex()[:16]} is in no index (used by {', '.join(m.chunks[cid])})"
        if strict:
            raise IntegrityError(message)
        m.problems.append(message)
    return m
