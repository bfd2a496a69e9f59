"""A side cluster: a point-in-time recovery of production into a temporary data directory on
a free port (127.0.0.1 only, archiving off), for the undelete playbook. Its folder and port
are recorded in the playbook's facts so a resumed run finds it again."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rfbackup.errors import RfBackupError

if TYPE_CHECKING:
    from rfbackup.config import Settings
    from rfbackup.pitr.recover import Target
    from rfbackup.sources.postgres.target import PostgresTarget


def recover(settings: Settings, target: Target) -> dict[str, Any]:
    from rfbackup.drill.checks.pitr import free_port
    from rfbackup.pitr.recover import Request, pitr
    from rfbackup.pitr.server import owner_of

    owner = owner_of(None)
    parent = Path(tempfile.mkdtemp(prefix="rfbackup-undelete-", dir=settings.tmp_dir))
    if os.geteuid() == 0:
        os.chown(parent, owner.pw_uid, owner.pw_gid)
    port = free_port()
    req = Request(
        target,
        parent / "data",
        start=True,
        port=port,
        server_settings={"listen_addresses": "127.0.0.1", "unix_socket_directories": str(parent)},
    )
    try:
        outcome = pitr(settings, req)
    except BaseException:
        remove(settings, str(parent))
        raise
    return {
        "side_dir": str(parent),
        "side_port": port,
        "recovered_to": outcome.stopped_at or outcome.last_transaction,
    }


def target(settings: Settings, port: int) -> PostgresTarget:
    prod = settings.postgres_target()
    return type(prod)(
        host="127.0.0.1",
        port=port,
        user=prod.user,
        dbname=prod.dbname or "postgres",
        password=prod.password,
        bin_dir=prod.bin_dir,
    )


def remove(settings: Settings, side_dir: str) -> None:
    from rfbackup.pitr.server import as_owner, owner_of
    from rfbackup.sources.postgres import tools

    parent = Path(side_dir)
    if not parent.name.startswith("rfbackup-undelete-"):
        raise RfBackupError(f"{side_dir} is not a side cluster folder; not removing it")
    data = parent / "data"
    if (data / "postmaster.pid").exists():
        pg_ctl = tools.find("pg_ctl", settings.pg_bin)
        cmd = [pg_ctl, "-D", str(data), "-m", "fast", "-w", "stop"]
        subprocess.run(as_owner(cmd, owner_of(None)), capture_output=True, check=False)
    shutil.rmtree(parent, ignore_errors=True)
