"""The restored files are checked against PostgreSQL's backup_manifest during extraction.

Each case forges a base backup whose stored bytes match rfbackup's manifest (so the sha256
check passes) but whose files differ from the backup_manifest inside the tar: pitr must
refuse it with exit 6, name the file, and leave no data directory behind.
"""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
from collections.abc import Callable
from pathlib import Path

import zstandard
from pitr_support import Archiving, archiving_cluster

Members = list[tuple[tarfile.TarInfo, bytes]]


def _read(stored: Path) -> Members:
    raw = zstandard.ZstdDecompressor().stream_reader(io.BytesIO(stored.read_bytes())).read()
    out: Members = []
    with tarfile.open(fileobj=io.BytesIO(raw), mode="r:") as tar:
        for m in tar.getmembers():
            f = tar.extractfile(m)
            out.append((m, f.read() if f else b""))
    return out


def _forge(stored: Path, members: Members) -> None:
    """Write ``members`` as the stored backup and make rfbackup's manifest agree with it."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:", format=tarfile.GNU_FORMAT) as tar:
        for m, data in members:
            m.size = len(data)
            tar.addfile(m, io.BytesIO(data) if m.isfile() else None)
    blob = zstandard.ZstdCompressor().compress(buf.getvalue())
    stored.write_bytes(blob)
    sidecar = stored.with_name(stored.name + ".manifest.json")
    doc = json.loads(sidecar.read_text())
    doc["data"]["sha256"] = hashlib.sha256(blob).hexdigest()
    doc["data"]["stored_bytes"] = len(blob)
    doc["data"]["raw_bytes"] = len(buf.getvalue())
    sidecar.write_text(json.dumps(doc))


def _flip_in(name: str) -> Callable[[Members], Members]:
    def change(members: Members) -> Members:
        out = []
        for m, data in members:
            if m.name == name:
                data = bytes([data[0] ^ 0xFF]) + data[1:]
            out.append((m, data))
        return out

    return change


def _drop(name: str) -> Callable[[Members], Members]:
    return lambda members: [(m, d) for m, d in members if m.name != name]


def _add(name: str) -> Callable[[Members], Members]:
    def change(members: Members) -> Members:
        extra = tarfile.TarInfo(name)
        extra.mode = 0o600
        return [*members[:-1], (extra, b"not in the manifest\n"), members[-1]]

    return change


Change = Callable[[Members], Members]


def _refused(
    cluster: Archiving, stored: Path, original: Members, change: Change, message: str
) -> None:
    _forge(stored, change(list(original)))
    data_dir = cluster.new_data_dir()
    r = cluster.run("pitr", "restore", "--latest", "--data-dir", str(data_dir))
    assert r.returncode == 6, r.stderr
    assert message in r.stderr, r.stderr
    assert "Traceback" not in r.stderr
    assert not data_dir.exists()


def test_files_that_differ_from_backup_manifest_are_refused() -> None:
    with archiving_cluster() as cluster:
        cluster.sql("CREATE TABLE t AS SELECT g AS id FROM generate_series(1, 1000) g")
        assert cluster.run("backup", "base").returncode == 0
        (stored,) = (Path(cluster.repo) / "base").glob("*.tar.zst")
        original = _read(stored)
        names = [m.name for m, _ in original]
        assert "backup_manifest" in names and "global/pg_control" in names
        # A copy re-packed unchanged restores: the forging itself is not what fails.
        _forge(stored, original)
        data_dir = cluster.new_data_dir()
        r = cluster.run("pitr", "restore", "--latest", "--data-dir", str(data_dir))
        assert r.returncode == 0, r.stderr
        assert (data_dir / "global" / "pg_control").read_bytes() == dict(
            (m.name, d) for m, d in original
        )["global/pg_control"]

        _refused(cluster, stored, original, _flip_in("PG_VERSION"), '"PG_VERSION"')
        _refused(cluster, stored, original, _drop("global/pg_control"), '"global/pg_control"')
        _refused(cluster, stored, original, _add("base/stray"), '"base/stray"')
        _refused(cluster, stored, original, _flip_in("backup_manifest"), "backup_manifest")
