"""Finding and listing backups. The repository listing is the catalog: no database of its own.

Every data object is paired with its manifest. What is found gets a status:

``ok``            data and manifest present, sizes agree
``damaged``       the data's size differs from its manifest
``missing-data``  a manifest whose data object is gone
``unreadable``    reading the manifest failed (permission, I/O, S3 403/503...): its state is
                  unknown, so it is never deleted
``bad-manifest``  a manifest that was read and is invalid (not JSON, not our format)
``no-manifest``   a file we did not write (e.g. the old shell scripts' backups)
``in-progress``   a write still running (its lock is held)
``abandoned``     a partial write left by a crash; never a backup, removed by the next run
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from rfbackup import lineage
from rfbackup.errors import ConfigError, IntegrityError, NotFound, RfBackupError
from rfbackup.locks import is_locked
from rfbackup.manifest import Manifest
from rfbackup.naming import MANIFEST_SUFFIX, BackupName, is_sidecar, roles_candidates
from rfbackup.storage import Repository, read_bytes

OK = "ok"
UNREADABLE = "unreadable"
DAMAGED = ("damaged", "bad-manifest")  # read, and provably not a good backup


@dataclass
class Entry:
    name: str
    component: str
    environment: str | None
    created_at: datetime
    size_bytes: int
    status: str
    manifest: Manifest | None = None
    problem: str = ""

    @property
    def sha256(self) -> str | None:
        return self.manifest.sha256 if self.manifest else None

    @property
    def good(self) -> bool:
        return self.status == OK

    @property
    def lineage(self) -> lineage.Lineage:
        """Which backups this one replaces; without a manifest, its name's environment."""
        if self.manifest is not None:
            return lineage.of(self.manifest)
        return (self.environment or "", self.component, "")

    def object_keys(self) -> list[str]:
        """The backup's objects in copy order: data, sidecars, manifest LAST. Delete reversed.

        The sidecars are the ones the manifest names (old backups use the old
        ``.roles.sql.gz`` name); without a manifest, every possible name is listed."""
        keys = [self.name]
        folder = self.name.rpartition("/")[0]
        if self.manifest is not None:
            for key in self.manifest.sidecar_keys():
                sidecar = key.rpartition("/")[2]
                keys.append(f"{folder}/{sidecar}" if folder else sidecar)
        elif (parsed := BackupName.parse(self.name)) is not None:
            keys += [*roles_candidates(parsed), parsed.dbprops_key]
        return [*keys, self.name + MANIFEST_SUFFIX]

    def to_dict(self) -> dict[str, object]:
        m = self.manifest
        return {
            "name": self.name,
            "component": self.component,
            "environment": self.environment,
            "created_at": self.created_at.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "size_bytes": self.size_bytes,
            "sha256": self.sha256,
            "status": self.status,
            "problem": self.problem or None,
            "subject": m.subject or None if m else None,
            "database": m.database.get("name") if m else None,
            "duration_seconds": m.duration_seconds if m else None,
            "raw_bytes": m.data.raw_bytes if m else None,
        }


PITR_PREFIXES = ("base/", "wal/")  # physical backups and the WAL archive: see rfbackup.pitr
# artifact snapshots keep their own encrypted catalog (`rfbackup artifacts list`)
OWN_CATALOG = ("artifacts/",)
LEASES = "locks/"  # lease objects (rfbackup.lease), never backups
# Records, never backups: restore drill reports (rfbackup.drill), DR playbook audit logs.
RECORDS = (LEASES, "drills/", "dr-audit/")


def scan(
    repo: Repository, lock_file: Path | None = None, prefix: str = "", include_base: bool = False
) -> list[Entry]:
    """Every backup-like thing in the repository (or under ``prefix``), newest first.

    Without a prefix, the WAL archive is left out, and so are the base backups of
    point-in-time recovery unless ``include_base``."""
    skip = (
        () if prefix else ("wal/", *OWN_CATALOG) if include_base else (*PITR_PREFIXES, *OWN_CATALOG)
    )
    objects = [
        o
        for o in repo.list(prefix, include_partial=True)
        if not (skip and o.key.startswith(skip)) and not o.key.startswith(RECORDS)
    ]
    committed = {o.key: o for o in objects if not o.partial}
    entries: list[Entry] = []
    paired: set[str] = set()  # data keys with a manifest, and every sidecar manifests name
    for obj in objects:  # first the manifests: they say which other objects are theirs
        key = obj.key
        if obj.partial or not key.endswith(MANIFEST_SUFFIX):
            continue
        data_key = key[: -len(MANIFEST_SUFFIX)]
        data = committed.get(data_key)
        entry = _from_manifest(
            repo,
            key,
            data_key,
            data.size if data else None,
            data.modified if data else obj.modified,
        )
        entries.append(entry)
        paired.add(data_key)
        if entry.manifest is not None:
            paired.update(entry.object_keys()[1:-1])
    for obj in objects:
        key = obj.key
        parsed = BackupName.parse(key)
        env = parsed.env.value if parsed and parsed.env else None
        created = parsed.stamp if parsed else obj.modified
        if obj.partial:
            running = lock_file is not None and _writer_running(repo, lock_file)
            status = "in-progress" if running else "abandoned"
            entries.append(
                Entry(key, "postgres" if parsed else "unknown", env, created, obj.size, status)
            )
            continue
        if key.endswith(MANIFEST_SUFFIX) or key in paired or is_sidecar(key):
            continue
        manifest_key = key + MANIFEST_SUFFIX
        if _hidden_manifest(repo, manifest_key):
            entries.append(_from_manifest(repo, manifest_key, key, obj.size, obj.modified))
        else:
            component = "postgres" if parsed else "unknown"
            entries.append(
                Entry(
                    key,
                    component,
                    env,
                    created,
                    obj.size,
                    "no-manifest",
                    problem="no manifest: not written by rfbackup, unverified",
                )
            )
    entries.sort(key=lambda e: (e.created_at, e.name), reverse=True)
    return entries


def _writer_running(repo: Repository, lock_file: Path) -> bool:
    """A write is in progress while this host's lock or anyone's live lease is held:
    "abandoned" means the lease expired (or its holder on this host is gone)."""
    from rfbackup.lease import holds_live_lease

    component = lock_file.stem.split("-", 1)[1]
    if is_locked(lock_file):
        return True
    try:
        return holds_live_lease(repo, component)
    except RfBackupError:  # could not read the lease: never call a write abandoned on doubt
        return True


def _hidden_manifest(repo: Repository, manifest_key: str) -> bool:
    """Is something there under the manifest's name that the listing did not show as an
    object (a folder in its place, an S3 HEAD refused)? Then it is read, and fails as
    ``unreadable``: a data file is never taken for a foreign file on doubt."""
    try:
        return repo.stat(manifest_key) is not None
    except RfBackupError:
        return True


def _from_manifest(
    repo: Repository, manifest_key: str, data_key: str, size: int | None, modified: datetime
) -> Entry:
    parsed = BackupName.parse(data_key)
    created = parsed.stamp if parsed else modified
    component = "postgres" if parsed else "unknown"
    env = parsed.env.value if parsed and parsed.env else None
    try:
        raw = read_bytes(repo, manifest_key)
    except Exception as exc:  # any failed read is a doubt, never a verdict
        # The read failed: that says nothing about the backup. Never a reason to delete.
        problem = f"manifest could not be read: {exc}"
        return Entry(data_key, component, env, created, size or 0, UNREADABLE, problem=problem)
    where = repo.describe(manifest_key)
    try:
        m = Manifest.from_json(raw, where)
        created = datetime.fromisoformat(m.started_at)
    except IntegrityError as exc:
        return Entry(data_key, component, env, created, size or 0, "bad-manifest", problem=str(exc))
    except (ValueError, TypeError):
        problem = f"{where}: invalid started_at {m.started_at!r}"
        return Entry(data_key, component, env, created, size or 0, "bad-manifest", problem=problem)
    if created.tzinfo is None:
        created = created.replace(tzinfo=UTC)
    if size is None:
        return Entry(
            data_key,
            m.component,
            m.environment,
            created,
            0,
            "missing-data",
            m,
            problem="the manifest's data file is missing",
        )
    if size != m.data.stored_bytes:
        return Entry(
            data_key,
            m.component,
            m.environment,
            created,
            size,
            "damaged",
            m,
            problem=f"size {size} differs from the manifest's {m.data.stored_bytes}",
        )
    return Entry(data_key, m.component, m.environment, created, size, OK, m)


def find(repo: Repository, name: str, lock_file: Path | None = None, exact: bool = False) -> Entry:
    """Look a backup up by its exact key (always when ``exact`` or the name holds a ``/``),
    or by a bare file name anywhere in the repository. A bare name that matches more than
    one backup is an error listing them."""
    entries = scan(repo, lock_file)
    if exact or "/" in name:
        for entry in entries:
            if entry.name == name:
                return entry
        raise NotFound(f"no backup named {name!r} in {repo.url}")
    matches = [e for e in entries if e.name.rsplit("/", 1)[-1] == name]
    if len(matches) > 1:
        listed = ", ".join(sorted(e.name for e in matches))
        raise ConfigError(
            f"{name!r} matches {len(matches)} backups in {repo.url}: {listed}; "
            "give the full name or path of the one to use"
        )
    if not matches:
        raise NotFound(f"no backup named {name!r} in {repo.url}")
    return matches[0]
