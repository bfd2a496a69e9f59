"""Plain-text help screens: words are never cut, paragraphs are re-flowed to the terminal, every
option shows its value placeholder, choices and default, commands are grouped by panel.

Typer's own renderers print ``<bool>`` placeholders, ``{arg}`` braces, and cut words at 80
columns; the Rich one also reads ``[...]`` in help text as markup. ``polish`` swaps the classes
of a built command tree for the two below, so every command, including ones added later, gets
this renderer. It imports nothing heavy: ``rfbackup --help`` does not load Rich.
"""

from __future__ import annotations

import inspect
import shutil
import textwrap
from collections.abc import Iterable
from enum import Enum
from typing import Any

from typer.core import TyperArgument, TyperCommand, TyperGroup, TyperOption

MAX_WIDTH = 100
COMMANDS_PANEL = "Commands"
OPTIONS_PANEL = "Options"
KEEP = "\x00"  # a space that does not break a line: "[default: 30]" stays whole
HOOKS_PANEL = "Archiver hooks (PostgreSQL runs these)"


def width() -> int:
    columns = shutil.get_terminal_size((80, 24)).columns
    return max(40, min(columns, MAX_WIDTH))


def wrap(text: str, indent: int, cols: int, first: str = "") -> list[str]:
    """Wrap ``text`` at word boundaries; a word longer than the line stays whole."""
    wrapper = textwrap.TextWrapper(
        width=cols,
        initial_indent=first or " " * indent,
        subsequent_indent=" " * indent,
        break_long_words=False,
        break_on_hyphens=False,
    )
    lines = wrapper.wrap(text) or [(first or " " * indent).rstrip()]
    return [line.replace(KEEP, " ") for line in lines]


def paragraphs(text: str) -> list[str]:
    """Blank lines separate paragraphs; a single newline inside one is a space. A paragraph
    starting with ``\\b`` keeps its lines (examples, command lines)."""
    text = inspect.cleandoc(text).partition("\f")[0]
    out = []
    for para in text.split("\n\n"):
        if para.startswith("\b"):
            out.append("\b" + para.lstrip("\b\n"))
        else:
            out.append(" ".join(para.split()))
    return [p for p in out if p.strip("\b")]


def first_paragraph(cmd: Any) -> str:
    if cmd.short_help:
        return " ".join(str(cmd.short_help).split())
    paras = paragraphs(cmd.help or "")
    return paras[0].lstrip("\b") if paras else ""


def choice_values(param: TyperOption | TyperArgument) -> list[str] | None:
    choices = param.type_descriptor.choices
    if choices is None:
        return None
    return [str(c.value) if isinstance(c, Enum) else str(c) for c in choices]


def metavar(param: TyperOption | TyperArgument) -> str:
    if param.metavar:
        return param.metavar
    values = choice_values(param)
    if values is not None:
        return "[" + "|".join(values) + "]"
    if param.type_descriptor.is_path:
        return "PATH"
    annotation = param.type_descriptor.annotation
    if annotation is int:
        return "N"
    if isinstance(param, TyperArgument):
        return (param.name or "ARG").upper()
    return "TEXT"


def default_text(param: TyperOption | TyperArgument) -> str | None:
    if isinstance(param.show_default, str):
        return param.show_default
    if param.show_default is False or param.required:
        return None
    default = param.default
    if default is None:
        return None
    if isinstance(param, TyperOption) and param.is_flag:
        if not param.secondary_opts:
            return None  # a plain flag is off unless given
        names = param.opts if default else param.secondary_opts
        return names[0].lstrip("-")
    if isinstance(default, Enum):
        return str(default.value)
    if isinstance(default, list | tuple):
        return ", ".join(str(d) for d in default) if default else None
    return str(default)


def param_help(param: TyperOption | TyperArgument) -> str:
    parts = [" ".join((param.help or "").split())]
    lo, hi = getattr(param, "min", None), getattr(param, "max", None)
    if lo is not None and hi is not None:
        parts.append(f"[{lo} to {hi}]")
    elif lo is not None:
        parts.append(f"[at least {lo}]")
    elif hi is not None:
        parts.append(f"[at most {hi}]")
    default = default_text(param)
    if default is not None:
        parts.append(f"[default: {default}]")
    if param.required:
        parts.append("[required]")
    return " ".join(p if i == 0 else p.replace(" ", KEEP) for i, p in enumerate(parts) if p)


def option_term(param: TyperOption) -> str:
    shorts = [o for o in param.opts if not o.startswith("--")]
    longs = [o for o in param.opts if o.startswith("--")]
    term = ", ".join(shorts + longs)
    if param.secondary_opts:
        term += " / " + ", ".join(param.secondary_opts)
    if not param.is_flag:
        term += " " + metavar(param)
    return term


def definition_list(rows: Iterable[tuple[str, str]], cols: int) -> list[str]:
    rows = list(rows)
    if not rows:
        return []
    col = min(max(len(term) for term, _ in rows) + 4, 26)
    lines: list[str] = []
    for term, text in rows:
        lead = "  " + term
        if len(lead) + 2 <= col:
            lines.extend(wrap(text, col, cols, first=lead.ljust(col)))
        else:
            lines.append(lead)
            if text:
                lines.extend(wrap(text, col, cols))
    return lines


def usage(cmd: Any, ctx: Any) -> str:
    pieces = [ctx.command_path]
    if any(isinstance(p, TyperOption) and not p.hidden for p in cmd.params):
        pieces.append("[OPTIONS]")
    for p in cmd.params:
        if isinstance(p, TyperArgument):
            name = p.metavar or (p.name or "ARG").upper()
            name += "..." if p.nargs != 1 else ""
            pieces.append(name if p.required else f"[{name}]")
    if isinstance(cmd, TyperGroup):
        pieces.append("COMMAND [ARGS]...")
    return " ".join(pieces)


def render(cmd: Any, ctx: Any) -> str:
    cols = width()
    lines = wrap(usage(cmd, ctx), 4, cols, first="Usage: ")
    for para in paragraphs(cmd.help or ""):
        lines.append("")
        if para.startswith("\b"):
            lines.extend("  " + line for line in para[1:].splitlines())
        else:
            lines.extend(wrap(para, 2, cols))
    arguments = [
        (metavar(p), param_help(p))
        for p in cmd.params
        if isinstance(p, TyperArgument) and not p.hidden
    ]
    if arguments:
        lines += ["", "Arguments:", *definition_list(arguments, cols)]
    panels: dict[str, list[tuple[str, str]]] = {}
    for p in cmd.get_params(ctx):
        if isinstance(p, TyperOption) and not p.hidden:
            panel = p.rich_help_panel or OPTIONS_PANEL
            panels.setdefault(panel, []).append((option_term(p), param_help(p)))
    for panel, rows in panels.items():
        lines += ["", f"{panel}:", *definition_list(rows, cols)]
    if isinstance(cmd, TyperGroup):
        groups: dict[str, list[tuple[str, str]]] = {}
        for name in cmd.list_commands(ctx):
            sub = cmd.get_command(ctx, name)
            if sub is None or sub.hidden:
                continue
            panel = getattr(sub, "rich_help_panel", None) or COMMANDS_PANEL
            groups.setdefault(panel, []).append((name, first_paragraph(sub)))
        for panel, rows in groups.items():
            lines += ["", f"{panel}:", *definition_list(rows, cols)]
    if cmd.epilog:
        for para in paragraphs(cmd.epilog):
            lines += ["", *wrap(para.lstrip("\b"), 2, cols)]
    return "\n".join(lines) + "\n"


class HelpCommand(TyperCommand):
    def get_help(self, ctx: Any) -> str:
        return render(self, ctx).rstrip("\n")


class HelpGroup(TyperGroup):
    def get_help(self, ctx: Any) -> str:
        return render(self, ctx).rstrip("\n")


def polish(cmd: Any, order: Iterable[str] = ()) -> Any:
    """Give every command in the tree the help renderer above (and no Rich); list a group's
    commands in ``order`` first, the rest in the order they were added."""
    if isinstance(cmd, TyperGroup):
        cmd.__class__ = HelpGroup
        rank = {name: i for i, name in enumerate(order)}
        names = sorted(cmd.commands, key=lambda n: rank.get(n, len(rank)))
        cmd.commands = {n: cmd.commands[n] for n in names}
        for sub in cmd.commands.values():
            polish(sub)
    elif isinstance(cmd, TyperCommand):
        cmd.__class__ = HelpCommand
    if hasattr(cmd, "rich_markup_mode"):
        cmd.rich_markup_mode = None
    return cmd
