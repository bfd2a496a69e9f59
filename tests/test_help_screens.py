"""Every help screen at 80 columns: nothing cut, nothing empty, placeholders and defaults shown,
commands in the runbook's order, bare groups answer with their help."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from enum import Enum
from pathlib import Path
from typing import Any

import pytest
import typer.main

from rfbackup.cli import app, main

RFBACKUP = Path(sys.executable).with_name("rfbackup")


def command_paths() -> Iterator[tuple[list[str], Any]]:
    def walk(path: list[str], cmd: Any) -> Iterator[tuple[list[str], Any]]:
        yield path, cmd
        for name, sub in getattr(cmd, "commands", {}).items():
            if not sub.hidden:
                yield from walk([*path, name], sub)

    yield from walk([], typer.main.get_command(app))


PATHS = list(command_paths())


def help_of(args: list[str], monkeypatch: pytest.MonkeyPatch, capsys: Any) -> tuple[int, str]:
    monkeypatch.setenv("COLUMNS", "80")
    monkeypatch.setenv("NO_COLOR", "1")
    monkeypatch.delenv("FORCE_COLOR", raising=False)
    with pytest.raises(SystemExit) as exit_info:
        main(args)
    out = capsys.readouterr()
    return int(exit_info.value.code or 0), out.out + out.err


def flat(text: str) -> str:
    return " ".join(text.split())


@pytest.mark.parametrize("path,cmd", PATHS, ids=[" ".join(p) or "rfbackup" for p, _ in PATHS])
def test_help_screen_at_80_columns(
    path: list[str], cmd: Any, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    code, text = help_of([*path, "--help"], monkeypatch, capsys)
    assert code == 0, text
    lines = text.splitlines()
    too_long = [line for line in lines if len(line) > 80]
    assert not too_long, too_long
    usage = next(line for line in lines if line.startswith("Usage: "))
    assert usage.startswith("Usage: rfbackup" + "".join(f" {p}" for p in path))
    assert "{" not in usage and "}" not in usage, usage
    for placeholder in ("<bool>", "<str>", "<int", "<path>", "<development"):
        assert placeholder not in text
    assert "…" not in text
    assert "\x1b[" not in text  # no colour codes into a pipe
    flat_text = flat(text)
    assert flat(cmd.help or "").split("\n")[0][:40] in flat_text
    params = [p for p in cmd.params if not getattr(p, "hidden", False)]
    for p in params:
        assert (p.help or "").strip(), f"{' '.join(path)}: {p.name} has no description"
        # the whole description, word for word: nothing cut or broken mid-word
        assert flat(p.help) in flat_text, f"{p.name}: {p.help!r} not shown whole"
        for opt in p.opts:
            if opt.startswith("-"):
                assert re.search(rf"(^|[ ,]){re.escape(opt)}([ ,]|$)", text, re.M), opt
        choices = p.type_descriptor.choices
        if choices:
            values = [str(c.value) if isinstance(c, Enum) else str(c) for c in choices]
            shown = "[" + "|".join(values) + "]" in text or all(v in flat(p.help) for v in values)
            assert shown, f"choices of {p.name} not shown"
        default = p.default
        is_flag = getattr(p, "is_flag", False) and not p.secondary_opts
        if isinstance(p.show_default, str):
            assert f"[default: {p.show_default}]" in flat_text, p.name
        elif not is_flag and default is not None and p.show_default is not False:
            if isinstance(default, bool):
                label = (p.opts if default else p.secondary_opts)[0].lstrip("-")
            else:
                label = str(default.value if isinstance(default, Enum) else default)
            assert f"[default: {label}]" in flat_text, p.name
    for name, sub in getattr(cmd, "commands", {}).items():
        if sub.hidden:
            continue
        row = re.search(rf"^  {re.escape(name)} +(\S.*)$", text, re.M)
        assert row is not None, f"command {name} has no description in {path}"
        assert not row.group(1).endswith("..."), row.group(0)


def test_root_help_lists_the_runbook_commands_first_and_hooks_last(
    monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    _, text = help_of(["--help"], monkeypatch, capsys)
    rows = [m.group(1) for m in re.finditer(r"^  ([a-z][a-z-]+)  ", text, re.M)]
    assert rows[:4] == ["backup", "list", "restore", "prune"], rows
    hooks = text.index("Archiver hooks")
    assert text.index("  wal-push ") > hooks and text.index("  wal-fetch ") > hooks
    assert rows[-2:] == ["wal-push", "wal-fetch"], rows
    assert "-V, --version" in text and "--install-completion" in text


@pytest.mark.parametrize("group", [[], ["pitr"], ["backup"], ["replica"], ["schedule"]])
def test_bare_group_prints_its_help_and_succeeds(group: list[str]) -> None:
    env = {**os.environ, "COLUMNS": "80"}
    r = subprocess.run([str(RFBACKUP), *group], capture_output=True, text=True, env=env)
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("Usage: rfbackup" + "".join(f" {g}" for g in group))
    assert "COMMAND [ARGS]..." in r.stdout.splitlines()[0]
    assert "Commands:" in r.stdout
    assert r.stderr == ""


def test_version_short_and_long() -> None:
    from rfbackup import __version__

    for flag in ("-V", "--version"):
        r = subprocess.run([str(RFBACKUP), flag], capture_output=True, text=True)
        assert r.returncode == 0 and r.stdout.strip() == f"rfbackup {__version__}", r


def test_env_aliases_and_a_wrong_env(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RFBACKUP_")}
    env["RFBACKUP_LOG_FILE"] = str(tmp_path / "log")
    repo = tmp_path / "repo"
    repo.mkdir()
    ok = subprocess.run(
        [str(RFBACKUP), "list", "--env", "prod", "--repo", str(repo), "--json"],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
    )
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.strip() == "[]"
    bad = subprocess.run(
        [str(RFBACKUP), "list", "--env", "prodd", "--repo", str(repo)],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
    )
    assert bad.returncode == 2
    assert len(bad.stderr.strip().splitlines()) == 1, bad.stderr
    assert "development, staging, production" in bad.stderr and "prod=production" in bad.stderr


def test_env_names_match_the_configuration() -> None:
    from rfbackup.config import Environment
    from rfbackup.config_lean import ENVIRONMENTS

    assert tuple(e.value for e in Environment) == ENVIRONMENTS


def test_brackets_in_help_text_are_shown_not_eaten_as_markup(
    monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    _, text = help_of(["backup", "base", "--help"], monkeypatch, capsys)
    assert "through zstd [and age] into base/" in flat(text)


def test_shell_completion_completes_commands() -> None:
    env = {**os.environ, "_RFBACKUP_COMPLETE": "complete_bash"}
    for words, cword, expected in (
        ("rfbackup pi", "1", "pitr"),
        ("rfbackup pitr re", "2", "restore"),
    ):
        r = subprocess.run(
            [str(RFBACKUP)],
            capture_output=True,
            text=True,
            env={**env, "COMP_WORDS": words, "COMP_CWORD": cword, "_TYPER_COMPLETE_ARGS": words},
        )
        assert r.returncode == 0, r.stderr
        assert r.stdout.split() == [expected], r.stdout
