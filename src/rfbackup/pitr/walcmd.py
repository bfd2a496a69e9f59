"""PostgreSQL's ``archive_command`` and ``restore_command``, built for start-up cost.

PostgreSQL runs ``rfbackup wal-push %p`` once per 16 MB segment, and ``rfbackup wal-fetch %f %p``
once per segment replayed. Loading the configuration costs about half a second, so:

* ``wal-push`` of a segment PostgreSQL marked ready (``pg_wal/archive_status/*.ready``) goes
  through one background pusher per ``pg_wal`` (:mod:`rfbackup.pitr.pusher`), which reads the
  configuration once and archives the ready segments in parallel rounds, leaving a marker for
  each in ``pg_wal/rfbackup_status/``. A call returns when its own segment is stored (or
  failed): later calls find their marker and return before any configuration is read.
  (pgBackRest's async archive-push and WAL-G's ahead-push work the same way.)
  A file without a ``.ready`` status is pushed by the call itself.
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

from rfbackup.pitr.pusher import MARKER, STATUS_DIR, destination_key, push_async

TYPE_CHECKING = False  # typing itself costs ~10 ms on every archive_command call

if TYPE_CHECKING:
    from pathlib import Path
    from typing import Any

    from rfbackup.config import PitrPolicy, Settings
    from rfbackup.pitr.archive import WalArchive

PREFETCH_DIR = "rfbackup_prefetch"
FETCH_MISSING = 1
FETCH_FATAL = 126


def main(argv: list[str]) -> int:
    lean = _push_args(argv)
    if lean is not None:  # the common case, answered before anything else is imported
        code = push_async(*lean)
        if code is not None:
            return code
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
    from pathlib import Path

    if args.command == "wal-push":
        return push_command(Path(args.path), args.repo)
    return fetch_command(args.name, Path(args.dest), args.repo)


def _fail(command: str, message: str) -> None:
    print(f"rfbackup {command}: error: {message}", file=sys.stderr)


# -- wal-push -----------------------------------------------------------------------------


def _push_args(argv: list[str]) -> tuple[str, str | None] | None:
    """(path, --repo) of a plain ``wal-push [--repo URL] PATH``, else None (argparse's turn)."""
    if not argv or argv[0] != "wal-push":
        return None
    paths: list[str] = []
    repo: str | None = None
    rest = argv[1:]
    while rest:
        arg = rest.pop(0)
        if arg == "--repo" and rest:
            repo = rest.pop(0)
        elif arg.startswith("--repo="):
            repo = arg.removeprefix("--repo=")
        elif arg.startswith("-") or paths:
            return None
        else:
            paths.append(arg)
    return (paths[0], repo) if paths else None


def push_command(path: Path, repo_url: str | None) -> int:
    code = push_async(str(path), repo_url)
    if code is not None:
        return code
    from rfbackup.config import load
    from rfbackup.errors import RfBackupError

    started = time.time()
    settings: Settings | None = None
    try:
        settings = load()
        archive, policy = open_archive(repo_url, for_push=True, settings=settings)
        marked = push_with_batch(
            archive, path, policy.push_batch, policy.push_threads, destination_key(repo_url)
        )
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
    repo_url: str | None,
    for_push: bool,
    settings: Settings | None = None,
    packing: tuple[int, list[Any]] | None = None,
) -> tuple[WalArchive, PitrPolicy]:
    """The archive and the PITR policy. ``packing``: the pusher's :func:`pack_options`,
    already read (the age recipients are parsed once)."""
    from rfbackup.config import load
    from rfbackup.pitr.archive import WalArchive

    settings = settings or load()
    repo = settings.open_repository(repo_url)
    policy = settings.pitr
    if for_push:
        level, recipients = packing or pack_options(settings)
        replica = settings.open_replica()
        archive = WalArchive(
            repo,
            level,
            recipients=recipients,
            replica=replica,
            replica_required=settings.replica.required,
        )
        return archive, policy
    identities = settings.encryption.identities()
    return WalArchive(repo, policy.wal_zstd_level, identities=identities), policy


def pack_options(settings: Settings) -> tuple[int, list[Any]]:
    """The zstd level and the age recipients pushed WAL is packed with."""
    keys = settings.backup_recipients()
    if not keys:
        return settings.pitr.wal_zstd_level, []
    from rfbackup.encryption import parse_recipients

    return settings.pitr.wal_zstd_level, parse_recipients(keys)


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


def push_with_batch(
    archive: WalArchive, path: Path, batch: int, threads: int, key: str = ""
) -> list[str]:
    """Push ``path``, plus up to ``batch - 1`` other ready files in parallel. Only ``path``'s
    failure fails the call; the others are simply left for PostgreSQL to ask again.
    Returns the names pushed ahead (marked with ``key``, the destination's)."""
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

    from rfbackup import interrupts

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
            (status / (name + MARKER)).write_text(key)
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

    from rfbackup import interrupts

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
