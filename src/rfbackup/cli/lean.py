"""``rfbackup list`` without the CLI framework: Typer builds a pydantic validator for every
option of the command it runs, which alone costs more than the whole listing.

Only the plain forms are answered here (``--component/-c NAME``, ``--env ENV``, ``--repo URL``,
``--json``); anything else (``--help``, ``-v``, an unknown option, a bad value) returns None
and the Typer command runs, with its help and its error messages. The work itself is the
Typer command's (:func:`rfbackup.cli.listview.show`).
"""

from __future__ import annotations

import argparse
import signal
import sys


class _Refused(Exception):
    """Not a plain form: Typer's turn."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        raise _Refused(message)


def _parse(argv: list[str]) -> argparse.Namespace | None:
    parser = _Parser(prog="rfbackup list", add_help=False, allow_abbrev=False)
    parser.add_argument("--component", "-c", action="append", dest="components")
    parser.add_argument("--env")
    parser.add_argument("--repo")
    parser.add_argument("--json", action="store_true", dest="as_json")
    try:
        args = parser.parse_args(argv)
    except _Refused:
        return None
    if any(v is not None and (v == "" or v.startswith("-")) for v in (args.env, args.repo)):
        return None  # Typer says what is wrong with it
    if args.env is not None:
        from rfbackup.config_lean import env_name

        args.env = env_name(args.env)
        if args.env is None:
            return None
    return args


def list_command(argv: list[str]) -> int | None:
    """The exit code of ``rfbackup list ARGV``, or None when Typer must run it."""
    args = _parse(argv)
    if args is None:
        return None
    from rfbackup.cli.errors import install_signal_handlers, report_error
    from rfbackup.cli.listview import show
    from rfbackup.errors import Interrupted, RfBackupError

    install_signal_handlers()  # as cli.root.main does
    try:
        show(args.components, args.env, args.repo, args.as_json)
    except RfBackupError as exc:
        return report_error(exc)
    except KeyboardInterrupt:
        return report_error(Interrupted(signal.SIGINT))
    sys.stdout.flush()
    return 0
