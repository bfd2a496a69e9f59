"""Can the PostgreSQL server's user run our archive_command? Checked as that user.

PostgreSQL runs ``rfbackup wal-push`` as its own OS user (``postgres``), with its own
environment. The repository folder is usually shared with logical backups run as root, so it is
often root-owned: archiving then fails on every segment and WAL piles up in ``pg_wal`` until the
disk is full. ``rfbackup pitr setup`` runs these checks before telling anyone to restart.
"""

from __future__ import annotations

import grp
import os
import pwd
import shlex
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from rfbackup.pitr.archive import PREFIX

POSTGRES = "postgres"


@dataclass
class Problem:
    message: str
    fix: list[list[str]] = field(default_factory=list)  # argv lists, run as root

    def commands(self) -> list[str]:
        return [shlex.join(argv) for argv in self.fix]


def server_user(data_dir: Path | None) -> str:
    """The owner of the data directory, else ``postgres``."""
    if data_dir is not None and data_dir.exists():
        return pwd.getpwuid(data_dir.stat().st_uid).pw_name
    return POSTGRES


def allowed(user: str, flag: str, path: Path) -> bool:
    """``test -FLAG path`` as ``user`` (through runuser when we are root)."""
    if pwd.getpwuid(os.geteuid()).pw_name == user:
        mode = {"r": os.R_OK, "w": os.W_OK | os.X_OK, "x": os.X_OK}[flag]
        return os.access(path, mode)
    test = ["test", f"-{flag}", str(path)]
    if flag == "w":
        test += ["-a", "-x", str(path)]
    proc = subprocess.run(["runuser", "-u", user, "--", *test], capture_output=True, check=False)
    return proc.returncode == 0


def _traverse(user: str, path: Path) -> list[Problem]:
    """Every folder above ``path`` must be searchable by ``user``."""
    problems = []
    for parent in reversed(path.parents):
        if parent.exists() and not allowed(user, "x", parent):
            problems.append(
                Problem(f"{user} cannot enter {parent}", [["chmod", "o+x", str(parent)]])
            )
            break
    return problems


def check_readable(user: str, path: Path, what: str) -> list[Problem]:
    problems = _traverse(user, path)
    if not problems and not allowed(user, "r", path):
        group = owner_spec(user).split(":")[1]
        problems.append(
            Problem(
                f"{user} cannot read {what} {path}",
                [["chgrp", group, str(path)], ["chmod", "g+r", str(path)]],
            )
        )
    return problems


def owner_spec(user: str) -> str:
    """``user:group`` for chown, with the user's primary group."""
    return f"{user}:{grp.getgrgid(pwd.getpwnam(user).pw_gid).gr_name}"


def check_repository(user: str, root: Path) -> list[Problem]:
    """``user`` must be able to create and write ROOT/wal/..."""
    wal = root / PREFIX.rstrip("/")
    problems = _traverse(user, wal)
    if problems:
        return problems
    if wal.exists():
        folders = [wal, *(d for d in wal.iterdir() if d.is_dir())]
        if any(not allowed(user, "w", p) for p in folders):
            return [
                Problem(
                    f"{user} cannot write the WAL archive {wal}",
                    [["chown", "-R", owner_spec(user), str(wal)]],
                )
            ]
        return []
    nearest = next(p for p in [root, *root.parents] if p.exists())
    if allowed(user, "w", nearest):
        return []
    return [
        Problem(
            f"{user} cannot create the WAL archive {wal} ({nearest} is not writable by {user})",
            [
                ["mkdir", "-p", str(wal)],
                ["chown", owner_spec(user), str(wal)],
            ],
        )
    ]


def check(
    user: str, repository_url: str, files: dict[str, Path], executable: Path | None
) -> list[Problem]:
    """Everything ``user`` needs: the rfbackup executable, the files (config, recipients), and
    for a local repository, write access to its wal/ folder."""
    problems: list[Problem] = []
    if executable is not None:
        problems += _traverse(user, executable)
        if not problems and not allowed(user, "x", executable):
            problems.append(
                Problem(f"{user} cannot run {executable}", [["chmod", "o+rx", str(executable)]])
            )
    for what, path in files.items():
        problems += check_readable(user, path, what)
    if not repository_url.startswith("s3://"):
        problems += check_repository(user, Path(repository_url.removeprefix("file://")))
    return problems


def fix(problems: list[Problem]) -> None:
    for problem in problems:
        for argv in problem.fix:
            subprocess.run(argv, check=True, capture_output=True)
