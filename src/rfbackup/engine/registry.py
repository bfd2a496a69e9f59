"""What the engine knows about each component, supplied by the component itself.

A source package (``rfbackup.sources.NAME``) registers, in its ``__init__``, the retention
policy of its component (a function of the settings, so configuration stays in config.py).
Prune applies each component's own policy; a component nobody registered a policy for is
never pruned (nothing is deleted without a rule that says so).
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rfbackup.config import Settings


@dataclass(frozen=True)
class Keep:
    days: int
    min: int


_RETENTION: dict[str, Callable[[Settings], Keep]] = {}


def register_retention(component: str, policy: Callable[[Settings], Keep]) -> None:
    _RETENTION[component] = policy


def retention(settings: Settings) -> dict[str, Keep]:
    """Every registered component's policy (each source package imported first)."""
    import rfbackup.sources

    for info in pkgutil.iter_modules(rfbackup.sources.__path__):
        if info.ispkg:
            importlib.import_module(f"rfbackup.sources.{info.name}")
    return {component: policy(settings) for component, policy in sorted(_RETENTION.items())}
