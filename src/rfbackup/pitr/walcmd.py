"""PostgreSQL's ``archive_command`` and ``restore_command``, built for start-up cost.

PostgreSQL runs ``rfbackup wal-push %p`` once per 16 MB segment, and ``rfbackup wal-fetch %f %p``
once per segment replayed. Loading the configuration costs about half a second, so:

* ``wal-push`` also pushes up to ``push_batch - 1`` other segments that are ready
  (``pg_wal/archive_status/*.ready``), in parallel, and leaves a marker for each in
  ``pg_wal/rfbackup_status/``. When PostgreSQL then asks for one of those, the call finds
  the marker and returns at once, before any configuration is read. (WAL-G does the same.)
  The call is still synchronous: every segment is stored before it returns.
* ``wal-fetch`` fetches the next ``prefetch`` segments of the same timeline into
  ``pg_wal/rfbackup_prefetch/`` after the one asked for, verified by sha256, and later calls
  take them from there.

Both folders live in ``pg_wal``, which base backups never copy.

Exit codes follow PostgreSQL's rules: wal-fetch exits 1, silently, for a file that is not
archived (that is how recovery finds the end of WAL), and 126 for any other failure, which
makes recovery stop instead of promoting early on a WAL file it could not read.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

from rfbackup import interrupts

if TYPE_CHECKING:
    from rfbackup.config import PitrPolicy, Settings
    from rfbackup.pitr.archive import WalArchive

STATUS_DIR = "rfbackup_status"
PREFETCH_DIR = "rfbackup_prefetch"
MARKER = ".pushed"
FETCH_MISSING = 1
FETCH_FATAL = 126


def main(argv: list[str]) -> int:
    if len(argv) >= 2 and argv[0] == "wal-push" and _pushed_ahead(Path(argv[-1])):
        return 0  # the common case under load, answered before anything else is imported
    import argparse

    parser = argparse.ArgumentParser(prog="rfbackup", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    push = sub.add_parser("wal-push", help="archive_command: archive one WAL file (%%p)")
    push.add_argument("path", help="the WAL file, as PostgreSQL passes it (%%p)")
    push.add_argument("--repo", help="repository URL (default: the configured one)")
    fetch = sub.add_parser("wal-fetch", help="restore_command: fetch one WAL file (%%f %%p)")
    fetch.add_argument("name", help="the WAL file name (%%f)")
    fetch.add_argument("dest", help="where PostgreSQL wants it (%%p)")
    fetch.add_argument("--repo", help="repository URL (default: the configured one)")
    args = parser.parse_args(argv)
    if args.command == "wal-push":
        return push_command(Path(args.path), args.repo)
    return fetch_command(args.name, Path(args.dest), args.repo)


def _fail(command: str, message: str) -> None:
    print(f"rfbackup {command}: error: {message}", file=sys.stderr)


# -- wal-push -----------------------------------------------------------------------------


def _pushed_ahead(path: Path) -> bool:
    """True if an earlier call's batch already archived ``path`` (its marker is consumed)."""
    try:
        (path.parent / STATUS_DIR / (path.name + MARKER)).unlink()
    except OSError:
        return False
    return True


def push_command(path: Path, repo_url: str | None) -> int:
    if _pushed_ahead(path):
        return 0
    from rfbackup.config import load
    from rfbackup.errors import RfBackupError

    started = time.time()
    settings: Settings | None = None
    try:
        settings = load()
        archive, policy = open_archive(repo_url, for_push=True, settings=settings)
        marked = push_with_batch(archive, path, policy.push_batch, policy.push_threads)
    except RfBackupError as exc:
        _fail("wal-push", str(exc))
        _report(settings, started, path, [], exc)
        return exc.exit_code
    except KeyboardInterrupt:
        return 130
    _report(settings, started, path, marked, None)
    return 0


def _report(
    settings: Settings | None,
    started: float,
    path: Path,
    marked: list[str],
    error: Exception | None,
) -> None:
    """Metrics for this batch, only when configured: nothing more is imported otherwise."""
    if settings is None or not settings.metrics.enabled:
        return
    try:  # PostgreSQL reads our exit code: metrics can only warn
        from rfbackup.ops.metrics import deliver
        from rfbackup.report import RunReport, failed

        env = settings.env.value
        report = RunReport("wal", env, "backup", f"{env}/wal", started, time.time(), key=path.name)
        waiting = {n for n in ready_files(path.parent)} - {path.name, *marked}
        report.extra["lag_segments"] = len(waiting) + (1 if error is not None else 0)
        if error is not None:
            failed(report, error)
        deliver(report, settings.metrics)
    except Exception as exc:
        print(f"rfbackup wal-push: warning: metrics: {exc}", file=sys.stderr)


def open_archive(
    repo_url: str | None, for_push: bool, settings: Settings | None = None
) -> tuple[WalArchive, PitrPolicy]:
    from rfbackup.config import load
    from rfbackup.pitr.archive import WalArchive

    settings = settings or load()
    repo = settings.open_repository(repo_url)
    policy = settings.pitr
    if for_push:
        keys = settings.backup_recipients()
        recipients = []
        if keys:
            from rfbackup.encryption import parse_recipients

            recipients = parse_recipients(keys)
        return WalArchive(repo, policy.wal_zstd_level, recipients=recipients), policy
    identities = settings.encryption.identities()
    return WalArchive(repo, policy.wal_zstd_level, identities=identities), policy


def ready_files(wal_dir: Path) -> list[str]:
    """WAL files PostgreSQL has marked ready to archive, in its own order: history files
    first, then oldest first."""
    from rfbackup.pitr.walnames import is_history, is_wal_file

    try:
        names = [n[: -len(".ready")] for n in os.listdir(wal_dir / "archive_status")]
    except FileNotFoundError:
        return []
    names = [n for n in names if is_wal_file(n)]
    return sorted(names, key=lambda n: (not is_history(n), n))


def push_with_batch(archive: WalArchive, path: Path, batch: int, threads: int) -> list[str]:
    """Push ``path``, plus up to ``batch - 1`` other ready files in parallel. Only ``path``'s
    failure fails the call; the others are simply left for PostgreSQL to ask again.
    Returns the names pushed ahead (marked)."""
    wal_dir = path.parent
    status = wal_dir / STATUS_DIR
    _drop_stale_markers(status, wal_dir)
    extras = [n for n in ready_files(wal_dir) if n != path.name][: max(batch - 1, 0)]
    extras = [n for n in extras if not (status / (n + MARKER)).exists()]
    archive.prepare(path)
    if not extras:
        archive.push(path)
        return []
    from concurrent.futures import ThreadPoolExecutor

    marked = []
    with ThreadPoolExecutor(
        max_workers=threads, initializer=interrupts.leave_to_main_thread
    ) as pool:
        own = pool.submit(archive.push, path)
        ahead = {name: pool.submit(archive.push, wal_dir / name) for name in extras}
        own.result()
        status.mkdir(exist_ok=True)
        for name, future in ahead.items():
            try:
                future.result()
            except Exception as exc:
                print(f"rfbackup wal-push: {name} left for later: {exc}", file=sys.stderr)
                continue
            (status / (name + MARKER)).touch()
            marked.append(name)
    return marked


def _drop_stale_markers(status: Path, wal_dir: Path) -> None:
    """A marker whose file is no longer waiting to be archived will never be asked for."""
    try:
        markers = os.listdir(status)
    except FileNotFoundError:
        return
    for marker in markers:
        name = marker.removesuffix(MARKER)
        if not (wal_dir / "archive_status" / f"{name}.ready").exists():
            (status / marker).unlink(missing_ok=True)


# -- wal-fetch ----------------------------------------------------------------------------


def fetch_command(name: str, dest: Path, repo_url: str | None) -> int:
    ahead = dest.parent / PREFETCH_DIR / name
    try:
        os.replace(ahead, dest)
        return 0  # fetched ahead (and verified) by an earlier call
    except FileNotFoundError:
        pass
    except OSError as exc:
        _fail("wal-fetch", f"cannot move {ahead}: {exc.strerror}")
        return FETCH_FATAL
    from rfbackup.errors import NotFound, RfBackupError

    try:
        archive, policy = open_archive(repo_url, for_push=False)
        try:
            archive.fetch(name, dest)
        except NotFound:
            return FETCH_MISSING
        prefetch(archive, name, dest.parent / PREFETCH_DIR, policy.prefetch, policy.push_threads)
    except RfBackupError as exc:
        _fail("wal-fetch", str(exc))
        return FETCH_FATAL
    except KeyboardInterrupt:
        return FETCH_FATAL
    return 0


def prefetch(archive: WalArchive, name: str, folder: Path, count: int, threads: int) -> None:
    """Fetch the ``count`` segments after ``name`` on its timeline into ``folder``. Best
    effort: a missing or unreadable one just ends the run of prefetched files."""
    from rfbackup.pitr.walnames import Segment

    current = Segment.parse(name, archive.segment_size())
    if current is None or count <= 0:
        return
    folder.mkdir(exist_ok=True)
    for old in os.listdir(folder):  # consumed or skipped: recovery has moved past them
        seg = Segment.parse(old, current.size)
        if seg is None or seg.number <= current.number:
            (folder / old).unlink(missing_ok=True)
    wanted = []
    seg = current
    for _ in range(count):
        seg = seg.next()
        if not (folder / seg.name).exists():
            wanted.append(seg.name)
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(
        max_workers=threads, initializer=interrupts.leave_to_main_thread
    ) as pool:
        results = [pool.submit(_quiet_fetch, archive, n, folder / n) for n in wanted]
        for future in results:
            if not future.result():
                break


def _quiet_fetch(archive: WalArchive, name: str, dest: Path) -> bool:
    from rfbackup.errors import RfBackupError

    try:
        archive.fetch(name, dest)
    except RfBackupError:
        return False
    return True
