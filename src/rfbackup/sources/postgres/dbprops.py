"""The database's own properties, which a dump of its contents does not carry.

pg_dump without ``--create`` leaves out what belongs to the database itself: its owner, its
ACL (``REVOKE CONNECT … FROM PUBLIC``), ``ALTER DATABASE … SET`` values and per-role settings
in it (``pg_db_role_setting``), its comment and its connection limit. They are captured at
backup time into a JSON sidecar, applied to the new database before the swap, and read back
to prove they arrived.
"""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg import sql

from rfbackup.errors import RestoreError
from rfbackup.sources.postgres.dump import connect
from rfbackup.sources.postgres.target import PostgresTarget

DATABASE_PRIVILEGES = ("CREATE", "TEMPORARY", "CONNECT")
# pg_dump's variable_is_guc_list_quote(): values that are lists of quoted names.
LIST_QUOTE = {
    "local_preload_libraries",
    "search_path",
    "session_preload_libraries",
    "shared_preload_libraries",
    "temp_tablespaces",
    "unix_socket_directories",
}

_DB_SQL = """
SELECT d.oid, pg_get_userbyid(d.datdba), d.datconnlimit,
       shobj_description(d.oid, 'pg_database'), d.datacl IS NULL
FROM pg_database d WHERE d.datname = %s
"""
_ACL_SQL = """
SELECT pg_get_userbyid(a.grantor),
       CASE WHEN a.grantee = 0 THEN NULL ELSE pg_get_userbyid(a.grantee) END,
       a.privilege_type, a.is_grantable
FROM pg_database d, aclexplode(d.datacl) a WHERE d.oid = %s
"""
_SETTINGS_SQL = """
SELECT CASE WHEN s.setrole = 0 THEN NULL ELSE pg_get_userbyid(s.setrole) END, s.setconfig
FROM pg_db_role_setting s WHERE s.setdatabase = %s
"""


def read(conn: psycopg.Connection[Any], dbname: str) -> dict[str, Any]:
    """The properties of database ``dbname``, as the sidecar records them."""
    with conn.cursor() as cur:
        cur.execute(_DB_SQL, (dbname,))
        row = cur.fetchone()
        if row is None:
            raise RestoreError(f"database {dbname!r} does not exist")
        oid, owner, limit, comment, acl_default = row
        cur.execute(_ACL_SQL, (oid,))
        acl = [list(r) for r in cur.fetchall()]
        cur.execute(_SETTINGS_SQL, (oid,))
        settings = cur.fetchall()
    return {
        "owner": owner,
        "connection_limit": int(limit),
        "comment": comment,
        "acl": None if acl_default else sorted(acl, key=_acl_key),
        "settings": sorted(
            ({"role": role, "config": list(config)} for role, config in settings),
            key=lambda s: s["role"] or "",
        ),
    }


def _acl_key(item: list[Any]) -> tuple[str, str, str, bool]:
    grantor, grantee, privilege, grantable = item
    return (grantor, grantee or "", privilege, bool(grantable))


def capture(target: PostgresTarget) -> tuple[dict[str, Any] | None, str]:
    """The properties of the target's database, or None with the reason they could not be read."""
    try:
        with connect(target, autocommit=True) as conn:
            return read(conn, str(target.dbname)), "captured"
    except Exception as exc:  # reported in the manifest; the backup itself is fine
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return None, reason


def _settings_set(settings: Any) -> list[tuple[str, list[str]]]:
    return sorted((s["role"] or "", sorted(s["config"])) for s in settings or [])


def _value(name: str, value: str) -> sql.Composable:
    if name.lower() not in LIST_QUOTE:
        return sql.Literal(value)
    return sql.SQL(", ").join(sql.Literal(v) for v in split_list(value))


def split_list(value: str) -> list[str]:
    """``"$user", public`` -> ["$user", "public"] (pg_dump's SplitGUCList)."""
    items: list[str] = []
    i, n = 0, len(value)
    while i < n:
        while i < n and value[i].isspace():
            i += 1
        if i < n and value[i] == '"':
            j, out = i + 1, []
            while j < n:
                if value[j] == '"' and j + 1 < n and value[j + 1] == '"':
                    out.append('"')
                    j += 2
                elif value[j] == '"':
                    break
                else:
                    out.append(value[j])
                    j += 1
            items.append("".join(out))
            i = j + 1
        else:
            j = value.find(",", i)
            j = n if j < 0 else j
            items.append(value[i:j].strip())
            i = j
        while i < n and value[i] != ",":
            i += 1
        i += 1
    return items


def statements(dbname: str, props: dict[str, Any]) -> list[sql.SQL | sql.Composed]:
    """What makes a new database ``dbname`` carry ``props``."""
    db = sql.Identifier(dbname)
    owner = props["owner"]
    out: list[sql.SQL | sql.Composed] = [
        sql.SQL("ALTER DATABASE {} OWNER TO {}").format(db, sql.Identifier(owner)),
        sql.SQL("ALTER DATABASE {} WITH CONNECTION LIMIT {}").format(
            db, sql.Literal(int(props["connection_limit"]))
        ),
        sql.SQL("COMMENT ON DATABASE {} IS {}").format(db, sql.Literal(props.get("comment"))),
    ]
    if props.get("acl") is not None:
        out.append(sql.SQL("REVOKE ALL ON DATABASE {} FROM PUBLIC").format(db))
        out.append(sql.SQL("REVOKE ALL ON DATABASE {} FROM {}").format(db, sql.Identifier(owner)))
        # Grants made by the owner first: other grantors need their grant option.
        for grantor, grantee, privilege, grantable in sorted(
            props["acl"], key=lambda a: (a[0] != owner, *_acl_key(a))
        ):
            if privilege not in DATABASE_PRIVILEGES:
                raise RestoreError(f"unknown database privilege {privilege!r} in the backup")
            grant = sql.SQL("GRANT {} ON DATABASE {} TO {}{}").format(
                sql.SQL(privilege),
                db,
                sql.Identifier(grantee) if grantee else sql.SQL("PUBLIC"),
                sql.SQL(" WITH GRANT OPTION") if grantable else sql.SQL(""),
            )
            if grantor != owner:
                out.append(sql.SQL("SET ROLE {}").format(sql.Identifier(grantor)))
            out.append(grant)
            if grantor != owner:
                out.append(sql.SQL("RESET ROLE"))
    for setting in props.get("settings", []):
        role = setting["role"]
        for item in setting["config"]:
            name, _, value = str(item).partition("=")
            if role is None:
                stmt = sql.SQL("ALTER DATABASE {} SET {} TO {}").format(
                    db, sql.Identifier(name), _value(name, value)
                )
            else:
                stmt = sql.SQL("ALTER ROLE {} IN DATABASE {} SET {} TO {}").format(
                    sql.Identifier(role), db, sql.Identifier(name), _value(name, value)
                )
            out.append(stmt)
    return out


def apply(conn: psycopg.Connection[Any], dbname: str, props: dict[str, Any]) -> None:
    """Give ``dbname`` the recorded properties, then prove it has them."""
    try:
        with conn.transaction(), conn.cursor() as cur:
            for stmt in statements(dbname, props):
                cur.execute(stmt)
    except psycopg.Error as exc:
        raise RestoreError(
            f"cannot give the restored database its recorded properties: "
            f"{exc.diag.message_primary or exc} (--no-db-properties skips them)"
        ) from None
    try:
        actual = read(conn, dbname)
    except psycopg.Error as exc:
        raise RestoreError(f"cannot read back the restored database's properties: {exc}") from None
    problems = compare(props, actual)
    if problems:
        raise RestoreError(
            f"the restored database's properties differ from the backup's: {'; '.join(problems)}"
        )


def compare(expected: dict[str, Any], actual: dict[str, Any]) -> list[str]:
    problems = []
    for key in ("owner", "connection_limit", "comment", "acl", "settings"):
        want, got = expected.get(key), actual.get(key)
        if key == "acl" and want is not None:
            want = sorted((list(a) for a in want), key=_acl_key)
        if key == "settings":  # the order of SET values within one role does not matter
            want, got = _settings_set(want), _settings_set(got)
        if want != got:
            problems.append(f"{key} is {got!r}, backup had {want!r}")
    return problems
