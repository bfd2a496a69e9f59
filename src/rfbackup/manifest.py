"""The backup record: a JSON sidecar, written atomically and last. No manifest, no backup.

Format 2, the same for every source::

    format, component, environment, subject     who: lineage = (environment, component, subject)
    name, data {key, sha256, stored_bytes, raw_bytes}, compression, compression_level
    started_at, finished_at, duration_seconds, tool_version, host
    encryption {format, recipients}, signature (see signing.py)
    sidecars [{name, captured, key, sha256, stored_bytes | reason}]
    source {...}                                owned by the source (row counts, LSNs, RDB...)

Format 1 (PostgreSQL only: ``database``, ``dump``, ``row_counts``, ``checks``, ``physical`` at
the top, ``roles`` and ``db_properties`` as records) is still read: it is mapped onto the same
fields, and its signature is still checked against the document exactly as read.

It holds what restore and verification check against and never a secret.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

from rfbackup.errors import IntegrityError

FORMAT = "rfbackup-manifest/2"
FORMAT_V1 = "rfbackup-manifest/1"
STATUS_DONE = "done"

# Format 1's PostgreSQL fields: now in ``source`` (sections) or ``sidecars`` (records).
_V1_SECTIONS = ("database", "dump", "row_counts", "checks", "physical")
_V1_SIDECARS = ("roles", "db_properties")


@dataclass
class StoredFile:
    key: str
    sha256: str
    stored_bytes: int
    raw_bytes: int


@dataclass
class Manifest:
    name: str
    component: str
    environment: str
    tool_version: str
    started_at: str
    finished_at: str
    duration_seconds: float
    compression: str
    compression_level: int
    data: StoredFile
    subject: str = ""  # what the source backs up (a database, a cluster, an instance)
    host: str = ""
    encryption: dict[str, Any] = field(default_factory=dict)  # {"format": "age", "recipients"}
    sidecars: list[dict[str, Any]] = field(default_factory=list)
    source: dict[str, Any] = field(default_factory=dict)
    status: str = STATUS_DONE
    format: str = FORMAT
    signature: dict[str, Any] = field(default_factory=dict)  # Ed25519, see signing.py
    # The document exactly as read: a signature covers what was written, not what this
    # version of the dataclass would write today.
    _read_doc: dict[str, Any] | None = field(default=None, repr=False, compare=False)

    @property
    def sha256(self) -> str:
        return self.data.sha256

    @property
    def size_bytes(self) -> int:
        return self.data.stored_bytes

    def sidecar(self, name: str) -> dict[str, Any]:
        """The record of sidecar ``name`` ({} when the backup has none by that name)."""
        for record in self.sidecars:
            if record.get("name") == name:
                return record
        return {}

    def section(self, name: str) -> dict[str, Any]:
        value = self.source.get(name)
        return value if isinstance(value, dict) else {}

    # PostgreSQL's sections and sidecars, by their format-1 names.
    @property
    def database(self) -> dict[str, Any]:
        return self.section("database")

    @property
    def dump(self) -> dict[str, Any]:
        return self.section("dump")

    @property
    def row_counts(self) -> dict[str, int]:
        return self.section("row_counts")

    @property
    def checks(self) -> dict[str, Any]:
        return self.section("checks")

    @property
    def physical(self) -> dict[str, Any]:
        return self.section("physical")

    @property
    def roles(self) -> dict[str, Any]:
        return self.sidecar("roles")

    @property
    def db_properties(self) -> dict[str, Any]:
        return self.sidecar("db_properties")

    def sidecar_keys(self) -> list[str]:
        return [str(r["key"]) for r in self.sidecars if r.get("key")]

    def document(self) -> dict[str, Any]:
        doc = asdict(self)
        doc.pop("_read_doc")
        if not doc["signature"]:
            doc.pop("signature")
        return doc

    def signed_bytes(self) -> bytes:
        """The canonical bytes a signature covers (see :func:`rfbackup.signing.payload`)."""
        from rfbackup.signing import payload

        return payload(self._read_doc if self._read_doc is not None else self.document())

    def to_json(self) -> bytes:
        return (json.dumps(self.document(), indent=2, sort_keys=True) + "\n").encode()

    @classmethod
    def from_json(cls, raw: bytes, where: str) -> Manifest:
        try:
            doc = json.loads(raw)
            if not isinstance(doc, dict) or doc.get("format") not in (FORMAT, FORMAT_V1):
                found = doc.get("format") if isinstance(doc, dict) else type(doc).__name__
                raise IntegrityError(f"{where}: not an rfbackup manifest ({found!r})")
            read = json.loads(raw)
            if doc["format"] == FORMAT_V1:
                _from_v1(doc)
            doc["data"] = StoredFile(**doc["data"])
            doc.pop("_read_doc", None)
            m = cls(**doc, _read_doc=read)
            if not isinstance(m.source, dict) or not isinstance(m.sidecars, list):
                raise TypeError("source must be an object and sidecars a list")
            if not all(isinstance(r, dict) for r in m.sidecars):
                raise TypeError("every sidecar record must be an object")
            return m
        except IntegrityError:
            raise
        except (ValueError, TypeError, KeyError, AttributeError) as exc:
            raise IntegrityError(f"{where}: unreadable manifest ({exc})") from None


def _from_v1(doc: dict[str, Any]) -> None:
    """Format 1's top-level PostgreSQL fields, moved to where format 2 keeps them."""
    doc["source"] = {k: doc.pop(k) for k in _V1_SECTIONS if doc.get(k)}
    for k in _V1_SECTIONS:
        doc.pop(k, None)
    doc["sidecars"] = [
        {"name": k, **record}
        for k in _V1_SIDECARS
        if isinstance(record := doc.pop(k, {}), dict)
        if record
    ]
