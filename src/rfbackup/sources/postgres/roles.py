"""Global objects (roles), so a restore onto a new server does not fail on missing owners.

Captured with ``pg_dumpall --roles-only --no-role-passwords``: no password hash is ever
stored, and a non-superuser can run it. On restore only the roles that do not exist yet are
created, so an existing server's roles are never altered.
"""

from __future__ import annotations

import re
import subprocess
from typing import Any

import psycopg

from rfbackup.sources.postgres import tools
from rfbackup.sources.postgres.target import PostgresTarget

_IDENT = r'(?:"(?:[^"]|"")+"|[A-Za-z_][A-Za-z0-9_$]*)'
_ROLE_STMT = re.compile(rf"^(?:CREATE|ALTER) ROLE (?P<role>{_IDENT})[ ;]")
_GRANT = re.compile(rf"^GRANT {_IDENT} TO (?P<member>{_IDENT})[ ;]")


def capture(target: PostgresTarget, dbname: str) -> tuple[bytes | None, str]:
    """The roles script, or None with the reason it could not be taken."""
    try:
        proc = subprocess.run(
            [
                tools.find("pg_dumpall", target.bin_dir),
                "--roles-only",
                "--no-role-passwords",
                "--no-password",
                "-l",
                dbname,
            ],
            capture_output=True,
            env=target.child_env(),
            stdin=subprocess.DEVNULL,
            timeout=300,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return None, f"pg_dumpall could not run: {exc}"
    if proc.returncode != 0:
        err = proc.stderr.decode("utf-8", "replace").strip().splitlines()
        return None, f"pg_dumpall failed: {err[-1] if err else proc.returncode}"
    return proc.stdout, "captured"


def _unquote(ident: str) -> str:
    if ident.startswith('"'):
        return ident[1:-1].replace('""', '"')
    return ident.lower()


def missing_roles_script(script: str, conn: psycopg.Connection[Any]) -> tuple[str, list[str]]:
    """The statements that create the roles the server lacks, and those roles' names."""
    with conn.cursor() as cur:
        cur.execute("SELECT rolname FROM pg_roles")
        existing = {row[0] for row in cur.fetchall()}
    keep: list[str] = []
    created: list[str] = []
    for line in script.splitlines():
        m = _ROLE_STMT.match(line)
        if m:
            role = _unquote(m["role"])
            if role not in existing:
                keep.append(line)
                if line.startswith("CREATE"):
                    created.append(role)
            continue
        g = _GRANT.match(line)
        if g and _unquote(g["member"]) not in existing:
            keep.append(line)
    return "\n".join(keep) + ("\n" if keep else ""), created
