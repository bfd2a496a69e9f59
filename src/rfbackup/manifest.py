"""The backup record: a JSON sidecar, written atomically and last. No manifest, no backup.

It holds what restore and verification check against (sha256, sizes, exact row counts taken
in the dump's own snapshot) and never a secret.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

from rfbackup.errors import IntegrityError

FORMAT = "rfbackup-manifest/1"
STATUS_DONE = "done"


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
    database: dict[str, Any] = field(default_factory=dict)
    dump: dict[str, Any] = field(default_factory=dict)
    row_counts: dict[str, int] = field(default_factory=dict)
    roles: dict[str, Any] = field(default_factory=dict)
    encryption: dict[str, Any] = field(default_factory=dict)  # {"format": "age", "recipients"}
    physical: dict[str, Any] = field(default_factory=dict)  # base backups: LSNs, timeline...
    # Large objects, sequences, materialized views (sources/postgres/verify_counts.py);
    # empty in manifests written before they were recorded.
    checks: dict[str, Any] = field(default_factory=dict)
    # The database's owner, ACL, settings...: a sidecar (sources/postgres/dbprops.py).
    db_properties: dict[str, Any] = field(default_factory=dict)
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
            if doc.get("format") != FORMAT:
                raise IntegrityError(f"{where}: not an rfbackup manifest ({doc.get('format')!r})")
            read = json.loads(raw)
            doc["data"] = StoredFile(**doc["data"])
            doc.pop("_read_doc", None)
            return cls(**doc, _read_doc=read)
        except IntegrityError:
            raise
        except (ValueError, TypeError, KeyError, AttributeError) as exc:
            raise IntegrityError(f"{where}: unreadable manifest ({exc})") from None
