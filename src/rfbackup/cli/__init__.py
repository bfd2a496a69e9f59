"""The ``rfbackup`` command: the Typer app in cli/root.py, one module per command group.

Importing this package loads nothing more, so that ``rfbackup list`` (cli/lean.py) can run
its command module without the whole Typer app; ``app`` and ``main`` load it on first use.
"""

from __future__ import annotations

from typing import Any


def __getattr__(name: str) -> Any:
    if name in ("app", "main", "command", "causes"):
        from rfbackup.cli import root

        return getattr(root, name)
    raise AttributeError(f"module 'rfbackup.cli' has no attribute {name!r}")
