"""Old command forms kept working for one release, each with a one-line note on stderr."""

from __future__ import annotations

import sys

HELP = ("-h", "--help")


def rewrite(args: list[str]) -> list[str]:
    """``rfbackup pitr --target-time T ...`` (before 0.2) is ``rfbackup pitr restore ...``."""
    if len(args) >= 2 and args[0] == "pitr" and args[1].startswith("-") and args[1] not in HELP:
        print(
            "rfbackup: note: `rfbackup pitr --OPTIONS` is deprecated and will be removed in the "
            "next release; use `rfbackup pitr restore --OPTIONS`",
            file=sys.stderr,
        )
        return ["pitr", "restore", *args[1:]]
    return args
