"""Old command forms kept working for one release, each with a one-line note on stderr."""

from __future__ import annotations

import sys

HELP = ("-h", "--help")


def rewrite(args: list[str], restore_kinds: tuple[str, ...] = ()) -> list[str]:
    """``rfbackup pitr --target-time T ...`` (before 0.2) is ``rfbackup pitr restore ...``;
    ``rfbackup restore FILE [OPTIONS]`` (the runbook's form, not deprecated) is
    ``rfbackup restore postgres FILE [OPTIONS]``."""
    lead = 0
    while lead < len(args) and args[lead].startswith("-"):  # root options: -v, --verbose
        lead += 1
    head, args = args[:lead], args[lead:]
    if len(args) >= 2 and args[0] == "restore" and args[1] not in (*restore_kinds, *HELP):
        return [*head, "restore", "postgres", *args[1:]]
    if head:
        return [*head, *rewrite(args, restore_kinds)]
    if len(args) >= 2 and args[0] == "pitr" and args[1].startswith("-") and args[1] not in HELP:
        print(
            "rfbackup: note: `rfbackup pitr --OPTIONS` is deprecated and will be removed in the "
            "next release; use `rfbackup pitr restore --OPTIONS`",
            file=sys.stderr,
        )
        return ["pitr", "restore", *args[1:]]
    return args
