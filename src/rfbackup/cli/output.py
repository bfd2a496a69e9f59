"""Machine-readable output, shared by every command (no Typer here: cli/lean.py uses it)."""

from __future__ import annotations

import json
import sys
from typing import Any


def print_json(doc: Any) -> None:
    """JSON on stdout; every timestamp in it is RFC 3339 UTC with ``Z``."""
    from rfbackup.timefmt import normalize

    json.dump(normalize(doc), sys.stdout, indent=2, default=str)
    sys.stdout.write("\n")
