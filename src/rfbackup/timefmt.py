"""One time format for everything scripts read: RFC 3339 in UTC with ``Z``
(``2026-11-25T10:15:00Z``, with a fraction only when the time has one)."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

ISO_WITH_ZONE = re.compile(r"^\d{4}-\d\d-\d\d[T ]\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)$")


def rfc3339(value: datetime | None) -> str | None:
    if value is None:
        return None
    if value.tzinfo is None:
        raise ValueError(f"{value!r} has no time zone")
    text = value.astimezone(UTC).isoformat()
    return text.removesuffix("+00:00") + "Z"


def normalize(doc: Any) -> Any:
    """``doc`` with every datetime, and every ISO 8601 string with a zone, in RFC 3339 UTC."""
    if isinstance(doc, datetime):
        return rfc3339(doc) if doc.tzinfo is not None else doc.isoformat()
    if isinstance(doc, str) and ISO_WITH_ZONE.match(doc):
        return rfc3339(datetime.fromisoformat(doc.replace("Z", "+00:00")))
    if isinstance(doc, dict):
        return {k: normalize(v) for k, v in doc.items()}
    if isinstance(doc, list | tuple):
        return [normalize(v) for v in doc]
    return doc
