"""A restore gives the database back its own properties: owner, ACL, settings, comment and
connection limit, which a dump of its contents does not carry."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import psycopg
import pytest
from conftest import Env, table_checksums
from manifest_doc import set_sidecar
from manifest_doc import sidecar as record

PASSWORD = "props-pw-123"

# Read straight from the catalogs, independently of rfbackup's own reader.
PROPS_SQL = """
SELECT json_build_object(
  'owner', pg_get_userbyid(d.datdba),
  'connlimit', d.datconnlimit,
  'comment', shobj_description(d.oid, 'pg_database'),
  'acl', (SELECT array_agg(a::text ORDER BY a::text) FROM unnest(d.datacl) a),
  'settings', (SELECT json_object_agg(coalesce(s.setrole::regrole::text, '-'), s.setconfig)
               FROM pg_db_role_setting s WHERE s.setdatabase = d.oid))
FROM pg_database d WHERE d.datname = '{db}'
"""


def props(env: Env, dbname: str) -> dict[str, object]:
    return dict(json.loads(env.sql(PROPS_SQL.format(db=dbname), "postgres")))


def connects(env: Env, user: str, dbname: str) -> bool:
    try:
        with psycopg.connect(
            host="127.0.0.1", port=env.pg.port, user=user, password=PASSWORD, dbname=dbname
        ):
            return True
    except psycopg.OperationalError as exc:
        assert "permission denied for database" in str(exc), exc
        return False


@pytest.fixture
def with_props(env: Env) -> Env:
    db = env.dbname
    env.sql(
        f"""
        CREATE ROLE owner_{db} LOGIN PASSWORD '{PASSWORD}';
        CREATE ROLE locked_{db} LOGIN PASSWORD '{PASSWORD}';
        CREATE ROLE allowed_{db} LOGIN PASSWORD '{PASSWORD}';
        ALTER DATABASE {db} OWNER TO owner_{db};
        REVOKE CONNECT, TEMPORARY ON DATABASE {db} FROM PUBLIC;
        GRANT CONNECT ON DATABASE {db} TO allowed_{db};
        GRANT CREATE ON DATABASE {db} TO allowed_{db} WITH GRANT OPTION;
        ALTER DATABASE {db} SET work_mem = '7MB';
        ALTER DATABASE {db} SET search_path = "$user", public, "Odd, name";
        ALTER ROLE allowed_{db} IN DATABASE {db} SET statement_timeout = '5s';
        COMMENT ON DATABASE {db} IS 'it''s the app''s';
        ALTER DATABASE {db} WITH CONNECTION LIMIT 42;
        """,
        "postgres",
    )
    env.sql(f"SET ROLE allowed_{env.dbname}; GRANT CREATE ON DATABASE {db} TO locked_{db}")
    return env


def backup(env: Env) -> str:
    r = env.run("backup", "postgres")
    assert r.returncode == 0, r.stderr
    return r.stdout.strip()


def test_every_property_round_trips_and_the_locked_out_role_stays_out(with_props: Env) -> None:
    env = with_props
    db = env.dbname
    expected = props(env, db)
    assert expected["acl"] and expected["settings"] and expected["comment"]  # set up as meant
    assert connects(env, f"allowed_{db}", db) and not connects(env, f"locked_{db}", db)
    name = backup(env)
    r = env.run("restore", name, "--yes", "--json")
    assert r.returncode == 0, r.stderr
    assert not connects(env, f"locked_{db}", db)  # REVOKE CONNECT FROM PUBLIC held
    assert props(env, db) == expected
    assert json.loads(r.stdout)["db_properties"] is True
    manifest = json.loads((env.backups / f"{name}.manifest.json").read_text())
    assert record(manifest, "db_properties")["captured"] is True
    assert (env.backups / record(manifest, "db_properties")["key"]).is_file()
    with psycopg.connect(
        host="127.0.0.1", port=env.pg.port, user=f"allowed_{db}", password=PASSWORD, dbname=db
    ) as conn:
        row = conn.execute(
            "SELECT current_setting('statement_timeout'), current_setting('work_mem'),"
            " current_setting('search_path')"
        ).fetchone()
    assert row == ("5s", "7MB", '"$user", public, "Odd, name"')


def test_target_db_copies_get_them_unless_no_db_properties(with_props: Env) -> None:
    env = with_props
    expected = props(env, env.dbname)
    name = backup(env)
    copy, bare = f"{env.dbname}_copy", f"{env.dbname}_bare"
    r = env.run("restore", name, "--yes", "--target-db", copy)
    assert r.returncode == 0, r.stderr
    assert props(env, copy) == expected

    r = env.run("restore", name, "--yes", "--target-db", bare, "--no-db-properties")
    assert r.returncode == 0, r.stderr
    got = props(env, bare)
    assert got["owner"] == env.vars["PGUSER"] and got["acl"] is None and got["settings"] is None
    assert table_checksums(env.pg.dsn(bare)) == table_checksums(env.pg.dsn(env.dbname))


def test_a_corrupted_properties_sidecar_is_refused_before_any_database(with_props: Env) -> None:
    env = with_props
    name = backup(env)
    manifest = json.loads((env.backups / f"{name}.manifest.json").read_text())
    sidecar = env.backups / record(manifest, "db_properties")["key"]
    sidecar.write_text(sidecar.read_text().replace("42", "-1"))
    before = env.databases()
    r = env.run("restore", name, "--yes")
    assert r.returncode == 6, r.stderr
    assert "dbprops" in r.stderr and "corrupted" in r.stderr
    assert "into new database" not in r.stderr
    assert env.databases() == before


def test_properties_that_cannot_be_applied_fail_the_restore_and_keep_the_database(
    with_props: Env,
) -> None:
    env = with_props
    name = backup(env)
    manifest_path = env.backups / f"{name}.manifest.json"
    manifest = json.loads(manifest_path.read_text())
    set_sidecar(
        manifest, "roles", {"captured": False, "reason": "not allowed"}
    )  # no roles to recreate
    manifest_path.write_text(json.dumps(manifest))
    env.sql(f"ALTER DATABASE {env.dbname} OWNER TO {env.vars['PGUSER']}", "postgres")
    env.sql(f"DROP ROLE owner_{env.dbname}", "postgres")  # the owner is gone on this server
    before = (env.databases(), table_checksums(env.pg.dsn(env.dbname)))
    r = env.run("restore", name, "--yes")
    assert r.returncode == 9, r.stderr
    assert f'role "owner_{env.dbname}" does not exist' in r.stderr
    assert "--no-db-properties" in r.stderr
    assert (env.databases(), table_checksums(env.pg.dsn(env.dbname))) == before

    r = env.run("restore", name, "--yes", "--no-db-properties")
    assert r.returncode == 0, r.stderr


def test_the_sidecar_is_encrypted_like_the_data(with_props: Env, tmp_path: Path) -> None:
    env = with_props
    key = tmp_path / "age-identity.txt"
    subprocess.run(["age-keygen", "-o", str(key)], check=True, capture_output=True)
    public = subprocess.run(
        ["age-keygen", "-y", str(key)], check=True, capture_output=True, text=True
    ).stdout.strip()
    expected = props(env, env.dbname)
    r = env.run("backup", "postgres", RFBACKUP_ENCRYPTION__RECIPIENTS=public)
    assert r.returncode == 0, r.stderr
    name = r.stdout.strip()
    manifest = json.loads((env.backups / f"{name}.manifest.json").read_text())
    sidecar = env.backups / record(manifest, "db_properties")["key"]
    assert sidecar.name.endswith(".dbprops.json.age")
    assert b"work_mem" not in sidecar.read_bytes()
    clear = subprocess.run(
        ["age", "-d", "-i", str(key), str(sidecar)], check=True, capture_output=True
    ).stdout
    assert json.loads(clear)["connection_limit"] == 42  # the standard age CLI opens it
    copy = f"{env.dbname}_enc"
    r = env.run(
        "restore", name, "--yes", "--target-db", copy, RFBACKUP_ENCRYPTION__IDENTITY_FILE=str(key)
    )
    assert r.returncode == 0, r.stderr
    assert props(env, copy) == expected
