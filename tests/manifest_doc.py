"""Reading and editing a manifest document (format 2) in tests that tamper with one."""

from __future__ import annotations

from typing import Any


def sidecar(doc: dict[str, Any], name: str) -> dict[str, Any]:
    """The sidecar record ``name`` (roles, db_properties), for reading or editing in place."""
    return next(r for r in doc["sidecars"] if r.get("name") == name)


def pop_sidecar(doc: dict[str, Any], name: str) -> dict[str, Any]:
    record = sidecar(doc, name)
    doc["sidecars"].remove(record)
    return record


def set_sidecar(doc: dict[str, Any], name: str, record: dict[str, Any]) -> None:
    doc["sidecars"] = [r for r in doc["sidecars"] if r.get("name") != name]
    doc["sidecars"].append({"name": name, **record})
