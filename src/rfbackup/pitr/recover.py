"""``rfbackup pitr``: restore a base backup into an empty data directory and replay WAL to a
target, refusing before anything is written when the backup or the WAL is not there.

    choose backup -> check the WAL chain -> extract (sha256- and backup_manifest-checked)
        -> postgresql.auto.conf + recovery.signal -> [start, wait for promotion, report]
"""

from __future__ import annotations

import os
import pwd
import re
import shlex
import shutil
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from rfbackup import catalog, signing
from rfbackup.catalog import Entry
from rfbackup.config import Settings
from rfbackup.errors import ConfigError, NotFound, RestoreError
from rfbackup.logs import log
from rfbackup.pitr import chain
from rfbackup.pitr.archive import WalArchive
from rfbackup.pitr.basebackup import COMPONENT, PREFIX, wal_range
from rfbackup.pitr.extract import extract
from rfbackup.pitr.server import (
    SIGNAL,
    Outcome,
    chown_tree,
    owner_of,
    start_and_wait,
)
from rfbackup.pitr.setup import absolute_url, config_prefix, rfbackup_command, write_auto_conf
from rfbackup.pitr.walcmd import PREFETCH_DIR
from rfbackup.pitr.walnames import Segment, format_lsn, parse_lsn
from rfbackup.storage import Repository

MTIME_RESOLUTION = timedelta(seconds=1)  # the coarsest object time a repository reports (S3)


@dataclass(frozen=True)
class Target:
    kind: str  # time | lsn | name | latest
    value: str = ""

    @property
    def time(self) -> datetime:
        return parse_time(self.value)

    @property
    def lsn(self) -> int:
        return parse_lsn(self.value)

    def settings(self) -> dict[str, str]:
        if self.kind == "time":
            return {"recovery_target_time": self.time.strftime("%Y-%m-%d %H:%M:%S.%f+00")}
        if self.kind == "lsn":
            return {"recovery_target_lsn": format_lsn(self.lsn)}
        if self.kind == "name":
            return {"recovery_target_name": self.value}
        return {}

    def describe(self) -> str:
        return (
            "the end of the archived WAL" if self.kind == "latest" else f"{self.kind} {self.value}"
        )


def parse_time(text: str) -> datetime:
    """ISO 8601 or PostgreSQL's format, with a zone: a bare time is refused, not guessed (every
    time the tool prints is UTC, the operator's clock may not be)."""
    raw = text.strip().replace("Z", "+00:00")
    if re.search(r"[+-]\d\d$", raw):
        raw += ":00"
    try:
        value = datetime.fromisoformat(raw)
    except ValueError:
        raise ConfigError(
            f"cannot read {text!r} as a time: use e.g. 2026-11-25T10:15:00Z"
        ) from None
    if value.tzinfo is None:
        raise ConfigError(
            f"{text!r} has no time zone: add one, e.g. {value.strftime('%Y-%m-%dT%H:%M:%S')}Z "
            "for UTC (the zone of every time rfbackup prints) or +01:00"
        )
    return value.astimezone(UTC)


def base_backups_all(repo: Repository) -> list[Entry]:
    """Everything under ``base/``, whatever its status, newest first."""
    return catalog.scan(repo, prefix=PREFIX)


def base_backups(repo: Repository) -> list[Entry]:
    """Good base backups, newest first."""
    return [
        e
        for e in base_backups_all(repo)
        if e.good and e.manifest is not None and e.manifest.component == COMPONENT
    ]


def stop_time(entry: Entry) -> datetime:
    assert entry.manifest is not None
    p = entry.manifest.physical
    return datetime.fromisoformat(p.get("stop_time") or entry.manifest.finished_at)


def choose(backups: list[Entry], target: Target, name: str | None) -> Entry:
    if name is not None:
        for e in backups:
            if name in (e.name, e.name.rpartition("/")[2]) or e.name.startswith(PREFIX + name):
                return e
        raise NotFound(f"no good base backup named {name!r} (see `rfbackup pitr list`)")
    if not backups:
        raise NotFound("there is no base backup in the repository: run `rfbackup backup base`")
    if target.kind == "time":
        fits = [e for e in backups if stop_time(e) < target.time]
        if not fits:
            oldest = backups[-1]
            raise NotFound(
                f"no base backup is old enough for {target.value}: the oldest, "
                f"{oldest.name}, became consistent at {stop_time(oldest).isoformat()}"
            )
        return fits[0]
    if target.kind == "lsn":
        fits = [e for e in backups if _physical(e, "stop_lsn") <= target.lsn]
        if not fits:
            raise NotFound(f"no base backup ends before LSN {target.value}")
        return fits[0]
    return backups[0]


def _physical(e: Entry, key: str) -> int:
    assert e.manifest is not None
    return parse_lsn(str(e.manifest.physical[key]))


def check_wal(archive: WalArchive, backup: Entry, target: Target) -> chain.ChainReport:
    """Refuse, before anything is written, when the WAL to reach the target is not archived."""
    assert backup.manifest is not None
    start, stop = wal_range(backup.manifest)
    until = None
    if target.kind == "lsn":
        until = max(Segment.of_lsn(0, target.lsn, start.size).number, stop.number)
    report = chain.check(archive, start, until=until)
    if report.missing:
        shown = ", ".join(report.missing[:3]) + (" ..." if len(report.missing) > 3 else "")
        raise NotFound(
            f"WAL needed to recover from {backup.name} is missing from the archive: {shown} "
            f"({len(report.missing)} file(s)); `rfbackup wal-verify` lists every gap"
        )
    if report.last is None or report.last.number < stop.number:
        raise NotFound(f"WAL up to {stop.name}, which {backup.name} needs, is not archived")
    newest = report.newest_archived_at
    # S3 keeps LastModified to the second: a segment stamped 12:00:17 may have been archived
    # at 12:00:17.9, so only a stamp a whole second before the target proves it is older.
    if target.kind == "time" and newest is not None and newest + MTIME_RESOLUTION <= target.time:
        raise NotFound(
            f"the newest archived WAL ({report.last.name}, archived "
            f"{newest.isoformat(timespec='seconds')}) is older than {target.value}: the WAL "
            "up to the target is still in the server's current segment. On the live server run "
            "SELECT pg_switch_wal(); wait a few seconds for it to be archived, then retry. "
            "Do not use --latest to get around this: it replays everything, including the "
            "change you are recovering from"
        )
    return report


# -- restoring the files ------------------------------------------------------------------


@dataclass
class Request:
    target: Target
    data_dir: Path
    backup: str | None = None
    force: bool = False
    start: bool = False
    port: int | None = None
    archive: bool = False
    owner: str | None = None
    repo_url: str | None = None
    verify: bool = True
    allow_unverified: bool = False  # unsigned or untrusted base backup manifest
    # More server settings for the recovered cluster (the drill's listen address, sockets).
    server_settings: dict[str, str] = field(default_factory=dict)


def _identities(settings: Settings, what: str, user: pwd.struct_passwd) -> list[Any]:
    path = settings.encryption.identity_file
    if path is None:
        raise ConfigError(f"{what} is encrypted: set RFBACKUP_ENCRYPTION__IDENTITY_FILE")
    identities = settings.encryption.identities()
    st = path.stat()
    if st.st_uid != user.pw_uid and not st.st_mode & 0o044 and user.pw_uid != 0:
        raise ConfigError(
            f"{path} is not readable by {user.pw_name}, who runs the recovered server's "
            "restore_command (wal-fetch decrypts WAL with it)"
        )
    return identities


def prepare_dir(data_dir: Path, force: bool) -> Path | None:
    """Make sure ``data_dir`` is empty; with force, move what is there aside (never delete).
    Returns where the old directory went."""
    if data_dir.exists() and not data_dir.is_dir():
        raise ConfigError(f"{data_dir} exists and is not a directory")
    if data_dir.is_dir() and any(data_dir.iterdir()):
        if (data_dir / "postmaster.pid").exists():
            raise RestoreError(f"{data_dir} belongs to a running server; stop it first")
        if not force:
            raise RestoreError(
                f"{data_dir} is not empty; choose an empty directory, or pass --force to move "
                "its contents aside (nothing is deleted)"
            )
        aside = data_dir.with_name(
            f"{data_dir.name}.pre-pitr-{datetime.now().strftime('%Y%m%d_%H%M%S')}"
        )
        os.rename(data_dir, aside)
        return aside
    if not data_dir.parent.is_dir():
        raise ConfigError(f"{data_dir.parent} does not exist")
    return None


def pitr(settings: Settings, req: Request) -> Outcome:
    t0 = time.monotonic()
    repo = settings.open_repository(req.repo_url)
    user = owner_of(req.owner)
    backup = choose(base_backups(repo), req.target, req.backup)
    assert backup.manifest is not None
    where = repo.describe(backup.name)
    signing.check(
        settings.signing, backup.manifest, where, req.allow_unverified, settings.env.value
    )
    identities: list[Any] = []
    if backup.manifest.encryption:
        identities = _identities(settings, backup.name, user)
    archive = WalArchive(repo, identities=identities)
    wal = check_wal(archive, backup, req.target)
    major = int(backup.manifest.physical.get("pg_version_num", 0)) // 10000
    data_dir = req.data_dir.resolve()
    outcome = Outcome(str(data_dir), backup.name, req.target.describe())
    outcome.newest_wal = wal.last.name if wal.last else None
    if wal.newest_archived_at is not None:
        outcome.newest_wal_archived_at = wal.newest_archived_at.isoformat()
    aside = prepare_dir(data_dir, req.force)
    outcome.moved_aside = str(aside) if aside else None
    created = not data_dir.exists()
    data_dir.mkdir(mode=0o700, exist_ok=True)
    log.info("restoring %s into %s for recovery to %s", backup.name, data_dir, outcome.target)
    try:
        outcome.files, outcome.bytes = extract(repo, backup, data_dir, identities, req.verify)
        values = {
            "restore_command": (
                f"{config_prefix()}{rfbackup_command()} wal-fetch "
                f"--repo {shlex.quote(absolute_url(repo.url))} %f %p"
            ),
            "recovery_target_timeline": "latest",
            "recovery_target_action": "promote",
            **req.target.settings(),
        }
        if req.port is not None:
            values["port"] = str(req.port)
        if not req.archive:
            values["archive_mode"] = "off"
        values.update(req.server_settings)
        write_auto_conf(data_dir, values, f"rfbackup pitr {datetime.now(UTC).isoformat()}")
        (data_dir / SIGNAL).touch()
        shutil.rmtree(data_dir / "pg_wal" / PREFETCH_DIR, ignore_errors=True)
        chown_tree(data_dir, user)
    except BaseException:
        if created:
            shutil.rmtree(data_dir, ignore_errors=True)
        else:
            for child in data_dir.iterdir():
                if child.is_dir() and not child.is_symlink():
                    shutil.rmtree(child, ignore_errors=True)
                else:
                    child.unlink(missing_ok=True)
        if aside is not None:
            data_dir.rmdir()
            os.rename(aside, data_dir)
            outcome.moved_aside = None
        raise
    outcome.port = req.port
    if req.start:
        start_and_wait(data_dir, user, settings.pg_bin, major, outcome)
        shutil.rmtree(data_dir / "pg_wal" / PREFETCH_DIR, ignore_errors=True)
    if not req.archive:
        outcome.notes.append(
            "archive_mode is off on the recovered server, so its new timeline does not mix "
            "with the original's WAL; if it becomes the primary, run `rfbackup pitr setup "
            "--data-dir` and take a base backup"
        )
    outcome.seconds = round(time.monotonic() - t0, 3)
    return outcome
