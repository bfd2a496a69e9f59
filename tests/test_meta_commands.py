"""A tampered plain dump cannot make psql run a program on the restore host.

The attacker here can write the repository: they add a psql meta-command to the dump and fix
the manifest's sha256 and size (no signing key is configured, so only this layer stands).
Every case must fail, the marker file must not exist, and the live database must be as it was.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import shutil
from pathlib import Path

import pytest
from conftest import Env, base_env, make_database, table_checksums
from manifest_doc import sidecar

from rfbackup.sandbox.postgres import ThrowawayPostgres

FOOTER = b"-- PostgreSQL database dump complete\n--\n"


@pytest.fixture(scope="module")
def stored(pg: ThrowawayPostgres, tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Path]:
    """One small backup; each test tampers with its own copy of the folder."""
    dbname = make_database(pg, size=200_000)
    # COPY data lines that start with a backslash are data, not commands.
    pg.psql(
        "CREATE TABLE tricky (a text, b text);"
        "INSERT INTO tricky VALUES (NULL, 'x'), ('\\! not a command', '\\o |nope')",
        dbname,
    )
    cwd = tmp_path_factory.mktemp("meta")
    e = Env(pg, cwd, dbname, {**base_env(cwd), **pg.env(dbname)})
    r = e.run("backup", "postgres")
    assert r.returncode == 0, r.stderr
    return dbname, cwd


@pytest.fixture
def victim(stored: tuple[str, Path], pg: ThrowawayPostgres, tmp_path: Path) -> tuple[Env, str]:
    dbname, src = stored
    shutil.copytree(src / "backups", tmp_path / "backups")
    name = next(
        p.name for p in (tmp_path / "backups").glob("backup_*.sql.gz") if "roles" not in p.name
    )
    return Env(pg, tmp_path, dbname, {**base_env(tmp_path), **pg.env(dbname)}), name


def tamper(env: Env, name: str, edit: bytes, where: str) -> None:
    """Rewrite the stored dump like a bucket writer would, and fix up the manifest."""
    path = env.backups / name
    sql = gzip.decompress(path.read_bytes())
    if where == "after-footer":
        data = path.read_bytes() + gzip.compress(edit)  # an appended gzip member
    else:
        cut = sql.index(b"\nSET row_security = off;\n") + 1
        data = gzip.compress(sql[:cut] + edit + sql[cut:])
    path.write_bytes(data)
    mpath = env.backups / f"{name}.manifest.json"
    manifest = json.loads(mpath.read_text())
    manifest["data"].update(sha256=hashlib.sha256(data).hexdigest(), stored_bytes=len(data))
    mpath.write_text(json.dumps(manifest))


def commands(marker: Path) -> dict[str, bytes]:
    return {
        "shell": f"\\! touch {marker}\n".encode(),
        "output-pipe": f"\\o |touch {marker}\nSELECT 1;\n\\o\n".encode(),
        "copy-program": f"\\copy (SELECT 1) TO PROGRAM 'touch {marker}'\n".encode(),
        "mid-line": f"SELECT 1; \\! touch {marker}\n".encode(),
    }


@pytest.mark.parametrize("where", ["after-footer", "middle"])
@pytest.mark.parametrize("kind", ["shell", "output-pipe", "copy-program", "mid-line"])
def test_injected_meta_command_never_runs(victim: tuple[Env, str], where: str, kind: str) -> None:
    env, name = victim
    marker = env.cwd / "pwned"
    tamper(env, name, commands(marker)[kind], where)
    dbs, data = env.databases(), table_checksums(env.pg.dsn(env.dbname))
    r = env.run("restore", name, "--yes")
    assert r.returncode == (6 if where == "after-footer" else 9), r.stderr
    if where == "after-footer":
        assert "after pg_dump's completion footer" in r.stderr
    else:
        assert "restricted" in r.stderr  # psql itself refused the command
    assert not marker.exists()
    assert env.databases() == dbs
    assert table_checksums(env.pg.dsn(env.dbname)) == data


def test_a_second_unrestrict_with_the_dumps_own_key_is_refused(victim: tuple[Env, str]) -> None:
    """The attacker can read pg_dump's key from the dump; using it does not help them."""
    env, name = victim
    marker = env.cwd / "pwned"
    key = json.loads((env.backups / f"{name}.manifest.json").read_text())["source"]["dump"][
        "restrict_key"
    ]
    assert len(key) >= 32
    edit = f"\\unrestrict {key}\n\\! touch {marker}\n\\restrict {key}\n".encode()
    tamper(env, name, edit, "middle")
    dbs, data = env.databases(), table_checksums(env.pg.dsn(env.dbname))
    r = env.run("restore", name, "--yes")
    assert r.returncode == 6, r.stderr
    assert "repeats pg_dump's \\restrict key" in r.stderr
    assert not marker.exists()
    assert env.databases() == dbs
    assert table_checksums(env.pg.dsn(env.dbname)) == data


def test_an_honest_dump_with_backslash_data_restores(victim: tuple[Env, str]) -> None:
    env, name = victim
    before = table_checksums(env.pg.dsn(env.dbname))
    r = env.run("restore", name, "--yes", "--target-db", f"{env.dbname}_copy")
    assert r.returncode == 0, r.stderr
    assert table_checksums(env.pg.dsn(f"{env.dbname}_copy")) == before
    rows = env.sql(
        "SELECT coalesce(a, 'NULL') || '|' || b FROM tricky ORDER BY 1", f"{env.dbname}_copy"
    )
    assert rows.split("\n") == ["NULL|x", "\\! not a command|\\o |nope"]


@pytest.mark.parametrize(
    "version,ok",
    [
        ("psql (PostgreSQL) 15.13", False),
        ("psql (PostgreSQL) 15.14", True),
        ("psql (PostgreSQL) 15.20 (Debian 15.20-0+deb12u1)", True),
        ("psql (PostgreSQL) 16.9", False),
        ("psql (PostgreSQL) 17.6", True),
        ("psql (PostgreSQL) 18.0", True),
        ("psql (PostgreSQL) 12.22", False),
        ("", False),
    ],
)
def test_only_a_psql_that_knows_restrict_is_used(version: str, ok: bool) -> None:
    from rfbackup.sources.postgres.sqlguard import psql_can_restrict

    assert psql_can_restrict(version) is ok


@pytest.mark.parametrize(
    "dump,problem",
    [
        (b"", "does not start with pg_dump's header"),
        (
            b"--\n-- PostgreSQL database dump\n--\n\nSELECT 1;\n",
            "lacks pg_dump's completion footer",
        ),
        (
            b"--\n-- PostgreSQL database dump\n--\n\n\\restrict abc\n\nSELECT 1;\n"
            b"\n--\n-- PostgreSQL database dump complete\n--\n\n\\unrestrict xyz\n\n",
            "does not match its header",
        ),
    ],
)
def test_guard_refuses_what_pg_dump_would_not_write(dump: bytes, problem: str) -> None:
    import io

    from rfbackup.errors import IntegrityError
    from rfbackup.sources.postgres.sqlguard import GuardedDump

    with pytest.raises(IntegrityError, match=problem):
        GuardedDump(io.BytesIO(dump), None, "x").read(-1)


def test_meta_command_in_the_roles_sidecar_never_runs(victim: tuple[Env, str]) -> None:
    env, name = victim
    marker = env.cwd / "pwned"
    mpath = env.backups / f"{name}.manifest.json"
    manifest = json.loads(mpath.read_text())
    roles = env.backups / sidecar(manifest, "roles")["key"].rpartition("/")[2]
    script = gzip.decompress(roles.read_bytes())
    evil = gzip.compress(script + f"CREATE ROLE evil_meta; \\! touch {marker}\n".encode())
    roles.write_bytes(evil)
    sidecar(manifest, "roles").update(
        sha256=hashlib.sha256(evil).hexdigest(), stored_bytes=len(evil)
    )
    mpath.write_text(json.dumps(manifest))
    dbs, data = env.databases(), table_checksums(env.pg.dsn(env.dbname))
    r = env.run("restore", name, "--yes")
    assert r.returncode == 9, r.stderr
    assert "restricted" in r.stderr
    assert not marker.exists()
    assert env.sql("SELECT count(*) FROM pg_roles WHERE rolname = 'evil_meta'") == "0"
    assert env.databases() == dbs
    assert table_checksums(env.pg.dsn(env.dbname)) == data
