"""Refusing configuration keys that mean nothing, with a suggestion (``keep_mn`` -> ``keep_min``).

pydantic-settings silently ignores unknown keys and unknown ``RFBACKUP_*`` variables, so a
typo in a retention setting would quietly fall back to the default. These checks are pure:
:mod:`rfbackup.config` reads the environment and the file and hands them over.

Only variables starting with ``RFBACKUP_`` are ours (``RFBACKUP_CONFIG`` names the file);
everything else in the environment is left alone.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import AliasChoices, BaseModel

from rfbackup.errors import ConfigError

PREFIX = "RFBACKUP_"
NOT_SETTINGS = {"RFBACKUP_CONFIG"}  # read before the settings, to find the file


def _submodel(model: type[BaseModel], name: str) -> type[BaseModel] | None:
    annotation = model.model_fields[name].annotation
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    return None


def _names(model: type[BaseModel], *, env: bool) -> dict[str, str]:
    """Accepted key (lower case) -> field name. Fields with a validation alias (PGHOST...)
    are read without our prefix, so in the environment they are not RFBACKUP_ names."""
    out: dict[str, str] = {}
    for name, info in model.model_fields.items():
        alias = info.validation_alias
        if alias is None:
            out[name] = name
        elif not env:
            out[name] = name
            choices = alias.choices if isinstance(alias, AliasChoices) else [alias]
            out.update({str(c).lower(): name for c in choices if isinstance(c, str)})
    return out


def _unknown(path: list[str], model: type[BaseModel], env: bool) -> tuple[int, str | None] | None:
    """None if ``path`` names a setting, else (index of the bad part, closest valid name)."""
    for i, part in enumerate(path):
        names = _names(model, env=env)
        field = names.get(part.lower())
        if field is None:
            close = difflib.get_close_matches(part.lower(), list(names), n=1, cutoff=0.6)
            return i, close[0] if close else None
        sub = _submodel(model, field)
        if sub is None:
            return None if i == len(path) - 1 else (i + 1, None)
        model = sub
    return None


def check_environment(environ: Mapping[str, str], settings: type[BaseModel]) -> None:
    for var in environ:
        upper = var.upper()
        if not upper.startswith(PREFIX) or upper in NOT_SETTINGS:
            continue
        path = upper[len(PREFIX) :].lower().split("__")
        bad = _unknown(path, settings, env=True)
        if bad is None:
            continue
        i, close = bad
        hint = ""
        if close is not None:
            hint = "; did you mean " + PREFIX + "__".join([*path[:i], close]).upper() + "?"
        raise ConfigError(f"unknown setting {var} in the environment{hint}")


def check_file(path: Path, doc: Mapping[str, Any], settings: type[BaseModel]) -> None:
    _check_table(path, doc, settings, [])


def _check_table(
    path: Path, doc: Mapping[str, Any], model: type[BaseModel], where: list[str]
) -> None:
    names = _names(model, env=False)
    for key, value in doc.items():
        field = names.get(key.lower())
        if field is None:
            close = difflib.get_close_matches(key.lower(), list(names), n=1, cutoff=0.6)
            hint = f"; did you mean {'.'.join([*where, close[0]])}?" if close else ""
            dotted = ".".join([*where, key])
            raise ConfigError(f"{path}: unknown setting {dotted}{hint}")
        sub = _submodel(model, field)
        if sub is not None and isinstance(value, Mapping):
            _check_table(path, value, sub, [*where, field])
