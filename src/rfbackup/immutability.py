"""Are the backups immutable? ``rfbackup check [--immutable]`` and ``rfbackup unhide``.

``check`` asks the bucket whether versioning and Object Lock are on and, with
``--immutable``, samples stored objects (the newest of each component, then a random
sample) and verifies each carries a retention at least as long as its policy needs:
retain-until >= last-modified + the component's keep-days, in the configured mode.

``unhide`` undoes what a stolen key can do to a locked bucket: it cannot remove a locked
version, only hide it behind a delete marker or a newer version. For each key whose oldest
version is still locked (ours: rfbackup never overwrites a key) but is not the current one,
that version is copied back on top, locked as before.
"""

from __future__ import annotations

import random
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from botocore.exceptions import BotoCoreError, ClientError

from rfbackup.errors import ConfigError
from rfbackup.storage import ObjectInfo, Repository
from rfbackup.storage.objectlock import EXEMPT_PREFIXES, Protection, RetentionPolicy, component_of
from rfbackup.storage.s3 import S3Repository, s3_error
from rfbackup.storage.s3lock import bring_back, head_retention, versions


@dataclass
class Finding:
    key: str
    problem: str
    retention: dict[str, str] | None
    needed_until: datetime

    def to_dict(self) -> dict[str, object]:
        return {
            "key": self.key,
            "problem": self.problem,
            "retention": self.retention,
            "needed_until": self.needed_until,
        }


@dataclass
class ImmutabilityReport:
    url: str
    protection: Protection | None
    mode: str  # the retention mode the policy asks for, or "off"
    problems: list[str] = field(default_factory=list)  # about the bucket or the settings
    objects: int = 0
    sampled: int = 0
    findings: list[Finding] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems and not self.findings

    def to_dict(self) -> dict[str, object]:
        return {
            "repository": self.url,
            "ok": self.ok,
            "versioning": self.protection.versioning if self.protection else None,
            "object_lock": self.protection.object_lock if self.protection else False,
            "mode": self.mode,
            "problems": self.problems,
            "objects": self.objects,
            "sampled": self.sampled,
            "findings": [f.to_dict() for f in self.findings],
        }


def bucket_report(repo: Repository, wanted: RetentionPolicy | None) -> ImmutabilityReport:
    """Versioning, Object Lock and the configured mode of ``repo``."""
    protection = repo.protection()
    mode = wanted.mode if wanted else "off"
    report = ImmutabilityReport(repo.url, protection, mode)
    if protection is None:
        report.problems.append("a local folder has no Object Lock: use an S3 bucket")
        return report
    if not protection.object_lock:
        report.problems.append(
            "Object Lock is not enabled on the bucket (create it with "
            "--object-lock-enabled-for-bucket)"
        )
    elif wanted is None:
        report.problems.append("object_lock.mode is off: new objects are written unlocked")
    if protection.versioning != "Enabled":
        report.problems.append(f"versioning is {protection.versioning}, not Enabled")
    return report


def check_objects(
    repo: Repository,
    policy: RetentionPolicy,
    report: ImmutabilityReport,
    sample: int,
    rng: random.Random | None = None,
) -> None:
    """Sample objects (0: all) and add a Finding for each whose lock falls short."""
    objects = [o for o in repo.list() if not o.key.startswith(EXEMPT_PREFIXES)]
    report.objects = len(objects)
    for obj in pick(objects, sample, rng or random.Random()):
        report.sampled += 1
        needed = obj.modified + timedelta(days=policy.days_for(obj.key))
        r = repo.object_retention(obj.key)
        if r is None:
            problem = "no retention"
        elif r.until < needed:
            problem = f"retention ends {r.until:%Y-%m-%d %H:%M:%S} UTC, too early"
        elif policy.mode == "COMPLIANCE" and r.mode != "COMPLIANCE":
            problem = f"{r.mode} where the policy asks for COMPLIANCE"
        else:
            continue
        report.findings.append(Finding(obj.key, problem, r.to_dict() if r else None, needed))


def pick(objects: list[ObjectInfo], sample: int, rng: random.Random) -> list[ObjectInfo]:
    """The newest object of each component, then random others, ``sample`` in all (0: all)."""
    if sample <= 0 or sample >= len(objects):
        return objects
    newest: dict[str, ObjectInfo] = {}
    for o in objects:
        c = component_of(o.key)
        if c not in newest or o.modified > newest[c].modified:
            newest[c] = o
    chosen = list(newest.values())[:sample]
    rest = [o for o in objects if o not in chosen]
    return chosen + rng.sample(rest, max(0, sample - len(chosen)))


@dataclass(frozen=True)
class Undeleted:
    key: str
    version_id: str
    hidden_by: str  # "delete marker" or "newer version"
    locked_until: datetime

    def to_dict(self) -> dict[str, object]:
        return {
            "key": self.key,
            "version_id": self.version_id,
            "hidden_by": self.hidden_by,
            "locked_until": self.locked_until,
        }


def unhide(repo: Repository, now: datetime, dry_run: bool) -> list[Undeleted]:
    """Bring back every locked version hidden by a delete marker or a newer version."""
    if not isinstance(repo, S3Repository):
        raise ConfigError(f"{repo.url} is a folder: unhide needs an S3 bucket with versions")
    try:
        return _unhide(repo, now, dry_run)
    except (ClientError, BotoCoreError) as exc:
        raise s3_error(exc, f"unhide in {repo.url}") from None


def _unhide(repo: S3Repository, now: datetime, dry_run: bool) -> list[Undeleted]:
    by_key = defaultdict(list)
    for v in versions(repo, ""):
        if not v.key.startswith(EXEMPT_PREFIXES):
            by_key[v.key].append(v)
    done = []
    for key, vs in sorted(by_key.items()):
        kept = [v for v in vs if not v.delete_marker]
        ours = kept[-1] if kept else None  # the oldest object version
        latest = next((v for v in vs if v.latest), None)
        if ours is None or latest is None or latest.version_id == ours.version_id:
            continue
        if not latest.delete_marker and (latest.etag, latest.size) == (ours.etag, ours.size):
            continue  # already brought back
        lock = head_retention(repo, key, ours.version_id)
        if lock is None or lock.until <= now:
            continue  # not protected: nothing to trust it by
        hidden = "delete marker" if latest.delete_marker else "newer version"
        done.append(Undeleted(key, ours.version_id, hidden, lock.until))
        if not dry_run:
            bring_back(repo, ours, lock)
    return done
