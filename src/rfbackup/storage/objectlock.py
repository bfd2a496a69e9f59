"""S3 Object Lock (WORM): which retention every object we store gets.

A :class:`LockPolicy` comes from the configuration (``[object_lock]``) and is attached to an
S3 repository. On the first write the repository asks the bucket whether Object Lock is on
and resolves the policy into a :class:`RetentionPolicy` (or none). From then on every
object written through ``writer``/``put`` carries ``ObjectLockMode`` and
``ObjectLockRetainUntilDate`` = now + the keep-days of the object's component + margin,
chosen by the key's first folder (``postgres/``, ``base/``, ``wal/``, ``redis/``...).
Callers never pass a retention: it follows from the key.

Leases (``locks/``) and artifact caches (``artifacts/cache/``) are exempt: they are
rewritten and deleted all the time.
Local repositories have no locks and ignore all of this.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from rfbackup.errors import StorageError

LockMode = Literal["compliance", "governance", "off"]
# Leases (rewritten every heartbeat, deleted at the end) and the artifact backup job's caches
# (stat cache, lock ledger: replaced every run, never needed by a restore; losing one only
# makes the next run read files again or ask the bucket for locks).
EXEMPT_PREFIXES = ("locks/", "artifacts/cache/")
# Components without their own keep-days setting yet, from the runbook's retention table.
DEFAULT_COMPONENT_DAYS = {"redis": 7, "artifacts": 90}


class ObjectLockOptions(BaseModel):
    """``[object_lock]``: WORM retention on S3 (docs/immutability.md)."""

    model_config = ConfigDict(extra="forbid")  # a typo is an error, not a default

    # None: governance in production when the bucket has Object Lock, else off.
    mode: LockMode | None = None
    # Added to each component's keep-days: "P7D", "3 days", or seconds ("30").
    margin: timedelta = Field(default=timedelta(days=7))
    keep_days: dict[str, int] = {}  # other components' days: {redis = 7, artifacts = 90}


@dataclass(frozen=True)
class Retention:
    """One object version's lock: ``mode`` COMPLIANCE or GOVERNANCE, until ``until``."""

    mode: str
    until: datetime

    def to_dict(self) -> dict[str, str]:
        return {"mode": self.mode, "until": self.until.strftime("%Y-%m-%dT%H:%M:%SZ")}


@dataclass(frozen=True)
class Protection:
    """What a bucket offers: versioning status and whether Object Lock is enabled."""

    versioning: str  # "Enabled", "Suspended" or "Off"
    object_lock: bool

    def to_dict(self) -> dict[str, object]:
        return {"versioning": self.versioning, "object_lock": self.object_lock}


def component_of(key: str) -> str:
    """The component a key belongs to: its first folder (``postgres/2025...`` -> postgres)."""
    head, sep, _ = key.partition("/")
    return head if sep else ""


@dataclass(frozen=True)
class RetentionPolicy:
    """Resolved: every object we write is locked in ``mode`` for its component's days."""

    mode: str  # "COMPLIANCE" | "GOVERNANCE"
    days: Mapping[str, int]  # component -> keep days
    margin: timedelta
    default_days: int  # a component not in ``days``: the longest of them, never less

    def days_for(self, key: str) -> int:
        return self.days.get(component_of(key), self.default_days)

    def needed(self, key: str) -> timedelta | None:
        """How long after its creation ``key`` must stay locked; None for exempt keys."""
        if key.startswith(EXEMPT_PREFIXES):
            return None
        return timedelta(days=self.days_for(key)) + self.margin

    def for_key(self, key: str, now: datetime) -> Retention | None:
        needed = self.needed(key)
        return None if needed is None else Retention(self.mode, now + needed)


@dataclass(frozen=True)
class LockPolicy:
    """The configured intent, before the bucket is asked. See :func:`resolve`."""

    mode: LockMode | None
    days: Mapping[str, int] = field(default_factory=dict)
    margin: timedelta = timedelta(days=7)
    production: bool = False

    @property
    def effective_mode(self) -> LockMode:
        """What the mode is once the bucket is known to have Object Lock."""
        if self.mode is None:
            return "governance" if self.production else "off"
        return self.mode

    def retention(self) -> RetentionPolicy:
        """The policy as if locks were on (for checks and planning)."""
        mode = self.effective_mode
        return RetentionPolicy(
            "GOVERNANCE" if mode == "governance" else "COMPLIANCE",
            dict(self.days),
            self.margin,
            max(self.days.values(), default=0),
        )


def lock_policy(
    mode: LockMode | None,
    margin: timedelta,
    component_days: Mapping[str, int],
    extra_days: Mapping[str, int],
    production: bool,
) -> LockPolicy:
    days = {**DEFAULT_COMPONENT_DAYS, **component_days, **extra_days}
    return LockPolicy(mode, days, margin, production)


class LockedObjects(StorageError):
    """A delete refused because versions are still locked (AccessDenied). Not a failure of a
    prune: those objects stay, as they must, and are reported."""

    def __init__(self, keys: list[str], url: str) -> None:
        super().__init__(
            f"{len(keys)} object(s) in {url} are locked (Object Lock) and were kept: "
            + ", ".join(keys[:5])
            + (" ..." if len(keys) > 5 else "")
        )
        self.keys = keys
