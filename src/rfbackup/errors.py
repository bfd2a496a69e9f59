"""Every failure a user can meet, each with its own exit code and a one-line message.

The CLI prints ``str(error)`` and exits with ``error.exit_code``; nothing else decides exit codes.
"""

from __future__ import annotations


class RfBackupError(Exception):
    """Base class: a failure with a human message and a distinct exit code."""

    exit_code = 1

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class ConfigError(RfBackupError):
    """The configuration or the command line asks for something impossible."""

    exit_code = 3


class SourceError(RfBackupError):
    """The thing being backed up could not be read (pg_dump failed, database unreachable)."""

    exit_code = 4


class AlreadyRunning(RfBackupError):
    """Another run holds the lock for this repository and component."""

    exit_code = 5


class IntegrityError(RfBackupError):
    """A stored backup is corrupted, truncated, or does not match its manifest."""

    exit_code = 6


class NotFound(RfBackupError):
    """The named backup, manifest or file does not exist."""

    exit_code = 7


class StorageError(RfBackupError):
    """Writing or reading the repository failed (disk full, permissions, I/O)."""

    exit_code = 8


class PartialExists(StorageError):
    """A write found the partial file of another write of the same key: one in progress, or
    one a killed process left behind."""


class RestoreError(RfBackupError):
    """The restore could not complete; the current database was left as it was."""

    exit_code = 9


class Aborted(RfBackupError):
    """The user declined a confirmation, or confirmation was impossible."""

    exit_code = 10


class Interrupted(RfBackupError):
    """SIGINT or SIGTERM arrived; partial work was removed."""

    def __init__(self, signum: int) -> None:
        import signal

        name = signal.Signals(signum).name
        super().__init__(f"interrupted by {name}; partial files were removed")
        self.exit_code = 128 + signum


class Stale(RfBackupError):
    """A component's newest good backup is older than its freshness threshold (status)."""

    exit_code = 11


class DrillFailed(RfBackupError):
    """A restore drill found a problem: a backup that does not restore or does not match."""

    exit_code = 12


class ModeSwitchError(RfBackupError):
    """Switching STANDBY/LIVE failed: the API refused, a rollout timed out, pods are stale."""

    exit_code = 13


class NotImmutable(RfBackupError):
    """``rfbackup check``: the repository, or objects in it, lack the Object Lock they need."""

    exit_code = 14
