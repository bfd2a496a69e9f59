"""The sidecars a restore reads besides the dump: the roles script and the database's
properties. Both are checked against the manifest's sha256 before any database is touched
(restore.verify_stored), and decrypted with the same age identity as the data."""

from __future__ import annotations

import gzip
import hashlib
import json
from typing import TYPE_CHECKING, Any

from rfbackup.engine.fetch import sidecar_key
from rfbackup.errors import IntegrityError
from rfbackup.logs import log
from rfbackup.sources.postgres import restore as pg
from rfbackup.sources.postgres import sqlguard, tools
from rfbackup.sources.postgres.roles import missing_roles_script
from rfbackup.sources.postgres.target import PostgresTarget
from rfbackup.storage import read_bytes

if TYPE_CHECKING:
    from rfbackup.engine.fetch import Located


def roles_key(loc: Located) -> str:
    """The roles sidecar always sits beside its data object, wherever the pair was copied."""
    assert loc.manifest is not None
    return sidecar_key(loc, loc.manifest.roles)


def db_properties(loc: Located, identities: list[Any]) -> dict[str, Any] | None:
    """The recorded database properties, or None (with a warning) if the backup has none."""
    m = loc.manifest
    if m is None:
        return None
    if not m.db_properties.get("captured"):
        reason = m.db_properties.get("reason", "the backup predates them")
        log.warning(
            "%s has no database properties (%s): owner, ACL and settings are not restored",
            loc.key,
            reason,
        )
        return None
    key = sidecar_key(loc, m.db_properties)
    data = read_bytes(loc.repo, key)
    if hashlib.sha256(data).hexdigest() != m.db_properties.get("sha256"):
        raise IntegrityError(f"{loc.repo.describe(key)} is corrupted")
    if identities:
        import pyrage

        data = pyrage.decrypt(data, identities)
    props: dict[str, Any] = json.loads(data)
    return props


def create_missing_roles(
    loc: Located, base: PostgresTarget, admin: Any, identities: list[Any]
) -> None:
    m = loc.manifest
    if m is None or not m.roles.get("captured"):
        return
    data = read_bytes(loc.repo, roles_key(loc))
    if identities:
        import pyrage

        data = pyrage.decrypt(data, identities)
    todo, created = missing_roles_script(gzip.decompress(data).decode(), admin)
    if created:
        log.info("creating roles missing on this server: %s", ", ".join(created))
        psql = tools.version(tools.find("psql", base.bin_dir))
        pg.run_sql_script(base, admin.info.dbname, sqlguard.restricted(todo, psql))
