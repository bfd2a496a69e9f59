"""Lineage: which backups replace each other, so retention keeps the newest N of each.

A lineage is (environment, component, subject). The subject is what one source backs up:
the database name for logical PostgreSQL backups, the cluster's system identifier for base
backups; a Redis source would give its instance, an artifact source its path set. A source
supplies its subject by registering a function of its manifest with :func:`register`.
"""

from __future__ import annotations

from collections.abc import Callable

from rfbackup.manifest import Manifest

Lineage = tuple[str, str, str]

_SUBJECTS: dict[str, Callable[[Manifest], str]] = {}


def register(component: str, subject: Callable[[Manifest], str]) -> None:
    _SUBJECTS[component] = subject


def of(m: Manifest) -> Lineage:
    """Format 2 manifests carry their subject; format 1 ones get it from their sections."""
    if m.subject:
        return (m.environment, m.component, m.subject)
    subject = _SUBJECTS.get(m.component)
    return (m.environment, m.component, subject(m) if subject else "")


register("postgres", lambda m: str(m.database.get("name") or ""))
register("postgres-base", lambda m: str(m.physical.get("system_identifier") or ""))
