"""The catalog's statuses, in-process against a real local repository (fast: the focused
test set of `make mutation` for catalog.py and retention.py)."""

from __future__ import annotations

import errno
import fcntl
import json
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from rfbackup import catalog
from rfbackup.catalog import Entry, find, scan
from rfbackup.errors import ConfigError, IntegrityError, NotFound, StorageError
from rfbackup.manifest import Manifest, StoredFile
from rfbackup.retention import Decision, Policy, plan
from rfbackup.storage.local import LocalRepository, storage_error


def manifest(name: str, data: bytes, *, roles: str | None = None, env: str = "staging") -> bytes:
    m = Manifest(
        name=name,
        component="postgres",
        environment=env,
        tool_version="0",
        started_at="2025-01-20T14:30:00+00:00",
        finished_at="2025-01-20T14:31:00+00:00",
        duration_seconds=60.0,
        compression="gzip",
        compression_level=6,
        data=StoredFile(name, "ab" * 32, len(data), 10 * len(data)),
        source={"database": {"name": "app"}},
        sidecars=[{"name": "roles", "captured": True, "key": roles}] if roles else [],
    )
    return m.to_json()


def put(root: Path, key: str, data: bytes) -> None:
    path = root / key
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


@pytest.fixture
def repo(tmp_path: Path) -> LocalRepository:
    return LocalRepository(tmp_path / "repo")


def statuses(entries: list[Entry]) -> dict[str, str]:
    return {e.name: e.status for e in entries}


def test_every_status(repo: LocalRepository) -> None:
    root = repo.root
    ok = "backup_20250120_143000.sql.gz"
    put(root, ok, b"12345")
    put(
        root,
        ok + ".manifest.json",
        manifest(ok, b"12345", roles="backup_20250120_143000.roles.sql.gz"),
    )
    put(root, "backup_20250120_143000.roles.sql.gz", b"roles")
    damaged = "backup_20250121_143000.sql.gz"
    put(root, damaged, b"1234")  # one byte short
    put(root, damaged + ".manifest.json", manifest(damaged, b"12345"))
    lost = "backup_20250122_143000.sql.gz"
    put(root, lost + ".manifest.json", manifest(lost, b"12345"))
    unreadable = "backup_20250123_143000.sql.gz"
    put(root, unreadable, b"xy")
    put(root, unreadable + ".manifest.json", b"{not json")
    foreign = "backup_20250124_143000.sql.gz"
    put(root, foreign, b"old scripts")
    put(root, "notes.txt", b"someone's file")
    put(root, ".backup_20250125_143000.sql.gz.partial", b"half")
    put(root, ".backup_prod_20250126_143000.sql.gz.partial", b"half")
    put(root, ".notes.md.partial", b"n")
    put(root, "base/20250120T143000Z.tar.zst", b"physical")  # PITR: left out of the list
    put(root, "wal/0000000100000000/000000010000000000000001-" + "0" * 64 + ".zst", b"w")

    entries = scan(repo)
    assert statuses(entries) == {
        ok: "ok",
        damaged: "damaged",
        lost: "missing-data",
        unreadable: "bad-manifest",
        foreign: "no-manifest",
        "notes.txt": "no-manifest",
        "backup_20250125_143000.sql.gz": "abandoned",
        "backup_prod_20250126_143000.sql.gz": "abandoned",
        "notes.md": "abandoned",
    }
    by_name = {e.name: e for e in entries}
    assert by_name[ok].good and not any(e.good for e in entries if e.name != ok)
    assert by_name[ok].environment == "staging" and by_name[ok].component == "postgres"
    assert by_name[ok].size_bytes == 5 and by_name[ok].sha256 == "ab" * 32
    assert by_name[ok].created_at == datetime(2025, 1, 20, 14, 30, tzinfo=UTC)
    assert by_name[damaged].problem == "size 4 differs from the manifest's 5"
    assert by_name[damaged].size_bytes == 4
    assert by_name[lost].problem == "the manifest's data file is missing"
    assert by_name[lost].size_bytes == 0
    for name in (damaged, lost):  # what the manifest says is kept, for the listing
        assert (by_name[name].component, by_name[name].environment) == ("postgres", "staging")
        assert by_name[name].sha256 == "ab" * 32
    assert by_name[unreadable].problem.startswith(
        f"{root}/{unreadable}.manifest.json: unreadable manifest"
    )
    assert by_name[unreadable].component == "postgres"  # named like one of ours
    assert by_name[unreadable].size_bytes == 2
    assert by_name[unreadable].created_at == datetime(2025, 1, 23, 14, 30, tzinfo=UTC)
    assert by_name[foreign].size_bytes == len(b"old scripts")
    partial = by_name["backup_prod_20250126_143000.sql.gz"]
    assert (partial.environment, partial.size_bytes) == ("production", 4)
    assert by_name["notes.md"].component == "unknown"
    assert by_name[foreign].component == "postgres" and by_name["notes.txt"].component == "unknown"
    assert by_name[foreign].environment == "development"
    assert by_name[foreign].problem == "no manifest: not written by rfbackup, unverified"
    assert by_name[foreign].sha256 is None
    assert by_name[foreign].created_at == datetime(2025, 1, 24, 14, 30, tzinfo=UTC)
    assert by_name["backup_20250125_143000.sql.gz"].component == "postgres"
    # newest first (by creation time, then name)
    created = [(e.created_at, e.name) for e in entries]
    assert created == sorted(created, reverse=True)

    assert statuses(scan(repo, prefix="base/")) == {"base/20250120T143000Z.tar.zst": "no-manifest"}
    assert [e.name for e in scan(repo, prefix="wal/")] == [
        "wal/0000000100000000/000000010000000000000001-" + "0" * 64 + ".zst"
    ]


def test_a_write_is_in_progress_only_while_its_lock_is_held(repo: LocalRepository) -> None:
    put(repo.root, ".backup_20250125_143000.sql.gz.partial", b"half")
    lock = repo.root / ".rfbackup-postgres.lock"
    assert statuses(scan(repo, lock)) == {"backup_20250125_143000.sql.gz": "abandoned"}
    fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        assert statuses(scan(repo, lock)) == {"backup_20250125_143000.sql.gz": "in-progress"}
        assert statuses(scan(repo)) == {"backup_20250125_143000.sql.gz": "abandoned"}
    finally:
        os.close(fd)


def test_object_keys_delete_order_and_sidecars(repo: LocalRepository) -> None:
    name = "postgres/20250120_143000.sql.gz.age"
    put(repo.root, name, b"12345")
    roles = "elsewhere/20250120_143000.roles.sql.gz.age"  # recorded path: only the file name counts
    put(repo.root, name + ".manifest.json", manifest(name, b"12345", roles=roles))
    (entry,) = scan(repo)
    assert entry.object_keys() == [
        name,
        "postgres/20250120_143000.roles.sql.gz.age",
        name + ".manifest.json",
    ]
    plain = Entry("backup_20250120_143000.sql.gz", "postgres", None, datetime.now(UTC), 1, "ok")
    assert plain.object_keys() == [  # no manifest: every sidecar name it could have
        "backup_20250120_143000.sql.gz",
        "backup_20250120_143000.roles.gz",
        "backup_20250120_143000.roles.sql.gz",
        "backup_20250120_143000.dbprops.json",
        "backup_20250120_143000.sql.gz.manifest.json",
    ]
    other = Entry("notes.txt", "unknown", None, datetime.now(UTC), 1, "no-manifest")
    assert other.object_keys() == ["notes.txt", "notes.txt.manifest.json"]


def test_object_keys_follow_the_manifest_roles_name(repo: LocalRepository) -> None:
    """The roles file is the one the manifest names (its file name), beside the data,
    however deep the data sits; flat names stay flat."""
    deep = "a/b/postgres/20250120_143000.sql.gz"
    put(repo.root, deep, b"1")
    put(repo.root, deep + ".manifest.json", manifest(deep, b"1", roles="x/y/renamed.roles.sql.gz"))
    flat = "backup_20250121_143000.sql.gz"
    put(repo.root, flat, b"1")
    put(repo.root, flat + ".manifest.json", manifest(flat, b"1", roles="other.roles.sql.gz"))
    keys = {e.name: e.object_keys() for e in scan(repo)}
    assert keys == {
        deep: [deep, "a/b/postgres/renamed.roles.sql.gz", deep + ".manifest.json"],
        flat: [flat, "other.roles.sql.gz", flat + ".manifest.json"],
    }


def test_to_dict_and_find(repo: LocalRepository) -> None:
    name = "backup_20250120_143000.sql.gz"
    put(repo.root, name, b"12345")
    put(repo.root, name + ".manifest.json", manifest(name, b"12345"))
    put(repo.root, "backup_20250121_143000.sql.gz", b"old")
    entry = find(repo, name)
    assert entry.to_dict() == {
        "name": name,
        "component": "postgres",
        "environment": "staging",
        "created_at": "2025-01-20T14:30:00Z",
        "size_bytes": 5,
        "sha256": "ab" * 32,
        "status": "ok",
        "problem": None,
        "subject": None,
        "database": "app",
        "duration_seconds": 60.0,
        "raw_bytes": 50,
    }
    foreign = find(repo, "backup_20250121_143000.sql.gz").to_dict()
    assert (foreign["database"], foreign["duration_seconds"], foreign["raw_bytes"]) == (
        None,
        None,
        None,
    )
    assert foreign["problem"] == "no manifest: not written by rfbackup, unverified"
    nested = "sub/postgres/20250122_143000.sql.gz"
    put(repo.root, nested, b"1")
    assert find(repo, "20250122_143000.sql.gz").name == nested  # by file name
    assert find(repo, nested).name == nested  # a name with a "/" is an exact key
    with pytest.raises(NotFound):
        find(repo, f"elsewhere/{nested}")
    put(repo.root, ".backup_20250125_143000.sql.gz.partial", b"half")
    lock = repo.root / ".rfbackup-postgres.lock"
    fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        assert find(repo, "backup_20250125_143000.sql.gz", lock).status == "in-progress"
    finally:
        os.close(fd)
    with pytest.raises(NotFound, match=r"no backup named 'backup_20990101_000000.sql.gz'"):
        find(repo, "backup_20990101_000000.sql.gz")


def test_manifest_without_data_or_name_parse(repo: LocalRepository) -> None:
    """A manifest for a name we cannot parse, and a bad one without data: dated by the
    manifest, or at the minimum date when even that is unreadable."""
    put(repo.root, "odd.bin.manifest.json", manifest("odd.bin", b"1"))
    put(repo.root, "weird.bin.manifest.json", b"[]")
    entries = {e.name: e for e in scan(repo)}
    assert entries["odd.bin"].status == "missing-data"
    assert entries["odd.bin"].created_at == datetime(2025, 1, 20, 14, 30, tzinfo=UTC)
    assert entries["weird.bin"].status == "bad-manifest"
    assert entries["weird.bin"].size_bytes == 0
    mtime = (repo.root / "weird.bin.manifest.json").stat().st_mtime
    assert entries["weird.bin"].created_at == datetime.fromtimestamp(mtime, UTC)
    assert catalog.OK == "ok"


# -- retention, beyond the table of test_retention -------------------------------------------

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def e(days: float, status: str = "ok", name: str = "", component: str = "postgres") -> Entry:
    created = NOW - timedelta(days=days)
    return Entry(name or f"b{days}", component, "development", created, 1, status)


def decide(entries: list[Entry], policy: Policy) -> dict[str, tuple[bool, str]]:
    return {d.entry.name: (d.delete, d.reason) for d in plan(entries, policy, NOW)}


def test_retention_reasons_word_for_word() -> None:
    entries = [
        e(1),
        e(40),
        e(50),
        e(60, "damaged"),
        e(70, "in-progress"),
        e(80, "no-manifest"),
        e(5, "missing-data"),
    ]
    assert decide(entries, Policy(30, 1)) == {
        "b1": (False, "one of the newest 1 good backups"),
        "b40": (True, "backup older than 30 days"),
        "b50": (True, "backup older than 30 days"),
        "b60": (False, "damaged; kept (use --delete-damaged to prune)"),
        "b70": (False, "being written or abandoned by a crash; never pruned"),
        "b80": (False, "no manifest; kept (use --include-unmanaged to prune)"),
        "b5": (False, "newer than 30 days"),
    }
    unmanaged = Policy(30, 1, include_unmanaged=True)
    assert decide([e(80, "no-manifest")], unmanaged) == {
        "b80": (False, "not named like a backup; never pruned")
    }
    old = "backup_20251201_000000.sql.gz"
    assert decide([e(80, "no-manifest", name=old)], unmanaged) == {
        old: (True, "no-manifest entry older than 30 days")
    }
    for policy in (Policy(0, 0), Policy(0, 0, include_unmanaged=True, delete_damaged=True)):
        assert decide([e(60, "unreadable")], policy) == {  # never deleted on doubt
            "b60": (False, "manifest could not be read; never deleted on doubt")
        }
    assert decide([e(60, "damaged")], Policy(30, 1, delete_damaged=True)) == {
        "b60": (True, "damaged entry older than 30 days")
    }


def test_retention_boundaries_and_order() -> None:
    exactly = e(30)  # created exactly keep_days ago: still kept
    assert decide([exactly, e(1)], Policy(30, 1))["b30"] == (False, "newer than 30 days")
    # ties on time are broken by name, newest first, and the output is sorted that way
    same = [e(40, name="a"), e(40, name="c"), e(40, name="b")]
    decisions = plan(same, Policy(30, 1), NOW)
    assert [(d.entry.name, d.delete) for d in decisions] == [
        ("c", False),
        ("b", True),
        ("a", True),
    ]
    # each component counts its own keep-min
    mixed = [e(40, name="p"), e(41, name="r", component="redis")]
    assert {d.entry.name for d in plan(mixed, Policy(30, 1), NOW) if not d.delete} == {"p", "r"}
    # abandoned entries never consume a keep-min slot, damaged ones neither
    assert decide([e(1, "abandoned"), e(2, "damaged"), e(40)], Policy(30, 1))["b40"][0] is False


def test_decision_to_dict() -> None:
    (d,) = plan([e(40)], Policy(30, 0), NOW)
    assert isinstance(d, Decision)
    doc = d.to_dict()
    assert (doc["name"], doc["action"], doc["reason"]) == (
        "b40",
        "delete",
        "backup older than 30 days",
    )
    (k,) = plan([e(1)], Policy(30, 0), NOW)
    assert k.to_dict()["action"] == "keep"
    assert Policy() == Policy(30, 3, False)
    assert json.dumps(doc)  # serialisable as it is


# -- the manifest and the local backend, in-process ------------------------------------------


def test_manifest_file_form_and_foreign_format() -> None:
    text = manifest("b.sql.gz", b"1").decode()
    assert text.startswith('{\n  "component": "postgres",\n  "compression": "gzip",\n')
    assert text.endswith("\n}\n")
    with pytest.raises(IntegrityError) as caught:
        Manifest.from_json(b'{"format": "other/9"}', "here.json")
    assert str(caught.value) == "here.json: not an rfbackup manifest ('other/9')"


def test_local_errors_and_edges(tmp_path: Path) -> None:
    full = storage_error(OSError(errno.ENOSPC, "No space left on device"), "f")
    assert str(full) == "disk full while writing f"
    big = storage_error(OSError(errno.EFBIG, "File too large"), "f")
    assert str(big) == "file size limit reached while writing f"
    other = storage_error(OSError(errno.EACCES, "Permission denied"), "f")
    assert str(other) == "cannot write f: Permission denied"
    assert str(storage_error(OSError("odd"), "f")) == "cannot write f: odd"

    repo = LocalRepository(tmp_path / "r")
    assert (repo.url, repo.layout) == (str(tmp_path / "r"), "flat")
    for bad in ("/etc/passwd", "../x", "a/../../x"):
        with pytest.raises(StorageError, match="invalid key"):
            repo.writer(bad)
    repo.put("k", b"v")
    info = repo.stat("k")
    assert info is not None and info.key == "k" and info.modified.tzinfo is not None
    repo.discard_partial("never-written")  # nothing there: not an error
    with pytest.raises(NotFound, match=f"{tmp_path / 'r' / 'nope'} does not exist"):
        repo.open("nope")
    put(repo.root, ".cache/x", b"hidden folder")
    put(repo.root, ".hidden", b"hidden file")
    put(repo.root, "z", b"after them")
    assert [o.key for o in repo.list()] == ["k", "z"]
    w = repo.writer("y")
    with pytest.raises(StorageError, match="another write is in progress"):
        repo.writer("y")
    w.abort()


def test_local_listing_by_prefix_among_other_files(tmp_path: Path) -> None:
    repo = LocalRepository(tmp_path / "r")
    for i in range(10):
        put(repo.root, f"q{i}", b"q")
        put(repo.root, f"p{i}", b"p")
        put(repo.root, f"wal/q{i}", b"q")
        put(repo.root, f"wal/p{i}", b"p")
    assert [o.key for o in repo.list("p")] == [f"p{i}" for i in range(10)]
    assert [o.key for o in repo.list("wal/p")] == [f"wal/p{i}" for i in range(10)]


def test_unreadable_and_odd_manifests_never_pass_for_good(repo: LocalRepository) -> None:
    root = repo.root
    folder = "backup_prod_20250120_143000.sql.gz"  # the manifest's name is a folder: unreadable
    put(root, folder, b"12345")
    (root / f"{folder}.manifest.json").mkdir()
    put(root, f"{folder}.manifest.json/x", b"")
    naive = "backup_20250121_143000.sql.gz"
    put(root, naive, b"12345")
    doc = json.loads(manifest(naive, b"12345"))
    doc["started_at"] = "2025-01-21T14:30:00"  # no zone: taken as UTC
    put(root, naive + ".manifest.json", json.dumps(doc).encode())
    bad_time = "backup_staging_20250122_143000.sql.gz"
    put(root, bad_time, b"123")
    doc["started_at"] = "yesterday"
    put(root, bad_time + ".manifest.json", json.dumps(doc).encode())
    entries = {e.name: e for e in scan(repo)}
    unreadable = entries[folder]
    assert (unreadable.status, unreadable.component, unreadable.environment) == (
        "unreadable",
        "postgres",
        "production",
    )
    assert unreadable.problem.startswith("manifest could not be read: ")
    assert unreadable.size_bytes == 5 and not unreadable.good
    assert entries[naive].status == "ok"
    assert entries[naive].created_at == datetime(2025, 1, 21, 14, 30, tzinfo=UTC)
    odd = entries[bad_time]
    assert (odd.status, odd.environment, odd.size_bytes) == ("bad-manifest", "staging", 3)
    assert odd.problem.endswith("invalid started_at 'yesterday'")
    assert odd.created_at == datetime(2025, 1, 22, 14, 30, tzinfo=UTC)


def test_find_a_bare_name_that_matches_two_backups(repo: LocalRepository) -> None:
    for key in ("a/postgres/20250120_143000.sql.gz", "b/postgres/20250120_143000.sql.gz"):
        put(repo.root, key, b"1")
        put(repo.root, key + ".manifest.json", manifest(key, b"1"))
    with pytest.raises(ConfigError) as caught:
        find(repo, "20250120_143000.sql.gz")
    assert str(caught.value) == (
        f"'20250120_143000.sql.gz' matches 2 backups in {repo.url}: "
        "a/postgres/20250120_143000.sql.gz, b/postgres/20250120_143000.sql.gz; "
        "give the full name or path of the one to use"
    )
    assert find(repo, "a/postgres/20250120_143000.sql.gz").name.startswith("a/")
    with pytest.raises(NotFound):
        find(repo, "20250120_143000.sql.gz", exact=True)
