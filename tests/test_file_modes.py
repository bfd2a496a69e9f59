"""File hygiene: what rfbackup leaves on disk is private, and its logs cannot be forged."""

from __future__ import annotations

import logging
from pathlib import Path

from conftest import Env

from rfbackup import logs


def test_newline_in_a_file_name_cannot_forge_a_log_line(env: Env) -> None:
    forged = "x.sql.gz\n2026-01-01T00:00:00Z INFO restored everything fine\x1b[2K"
    (env.cwd / forged).write_bytes(b"not a backup")
    r = env.run("restore", forged, "--yes")
    assert r.returncode != 0
    for text in (r.stderr, env.log_file.read_text()):
        lines = text.splitlines()
        assert not any(line.startswith("2026-01-01T00:00:00Z INFO") for line in lines), text
        assert "\x1b" not in text
        assert "\\n2026-01-01T00:00:00Z INFO" in text


def test_formatter_escapes_every_control_character(tmp_path: Path) -> None:
    logs.setup(tmp_path / "l.log")
    logs.log.info("name %s", "a\rb\nc\x00d\x85e\tf")
    for h in logs.log.handlers:
        h.flush()
    text = (tmp_path / "l.log").read_text()
    assert text.count("\n") == 1, text
    assert "a\\rb\\nc\\x00d\\x85e\\tf" in text
    logging.getLogger("rfbackup").handlers.clear()
