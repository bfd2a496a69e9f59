"""The ``rfbackup`` executable. ``wal-push`` and ``wal-fetch`` skip the CLI framework: PostgreSQL
runs them once per WAL segment, so their start-up cost is paid thousands of times a day."""

from __future__ import annotations

import sys

LEAN_COMMANDS = ("wal-push", "wal-fetch")


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] in LEAN_COMMANDS:
        from rfbackup.pitr.walcmd import main as wal_main

        sys.exit(wal_main(sys.argv[1:]))
    if len(sys.argv) > 1 and sys.argv[1] == "list":  # the common forms skip Typer too
        from rfbackup.cli.lean import list_command

        code = list_command(sys.argv[2:])
        if code is not None:
            sys.exit(code)
    from rfbackup.cli.root import main as cli_main

    cli_main()
