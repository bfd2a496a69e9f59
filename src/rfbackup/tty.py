"""Colour only for a person at a terminal: never into a pipe or file, never with NO_COLOR set
(https://no-color.org: any non-empty value)."""

from __future__ import annotations

import os
from typing import TextIO


def color(stream: TextIO) -> bool:
    if os.environ.get("NO_COLOR"):
        return False
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def bold(text: str, stream: TextIO) -> str:
    return f"\033[1m{text}\033[0m" if color(stream) else text
