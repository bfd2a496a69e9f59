"""Helpers for the Object Lock tests: locked buckets, and what their versions carry."""

from __future__ import annotations

import itertools
import os
from datetime import datetime
from typing import Any

from conftest import Env

from rfbackup.sandbox.seaweedfs import ThrowawayS3

PREFIX = "researchflow"
_names = itertools.count(1)


def locked_bucket(s3: ThrowawayS3) -> str:
    name = f"rfb-lock-{next(_names)}-{os.getpid()}"
    s3.create_bucket(name, object_lock=True)
    return name


def lock_env(s3: ThrowawayS3, bucket: str, **extra: str) -> dict[str, str]:
    return {
        **s3.env(),
        "RFBACKUP_REPOSITORY": f"s3://{bucket}/{PREFIX}",
        "RFBACKUP_OBJECT_LOCK__MODE": "compliance",
        **extra,
    }


def all_versions(s3: ThrowawayS3, bucket: str) -> list[dict[str, Any]]:
    """Every object version (no delete markers) in the bucket."""
    out: list[dict[str, Any]] = []
    pages = s3.client().get_paginator("list_object_versions").paginate(Bucket=bucket)
    for page in pages:
        out += page.get("Versions", [])
    return out


def retention(s3: ThrowawayS3, bucket: str, key: str, version: str) -> tuple[str, datetime] | None:
    head = s3.client().head_object(Bucket=bucket, Key=key, VersionId=version)
    if "ObjectLockMode" not in head:
        return None
    return head["ObjectLockMode"], head["ObjectLockRetainUntilDate"]


def backup(env: Env, extra: dict[str, str]) -> str:
    import json

    b = env.run("backup", "postgres", "--json", **extra)
    assert b.returncode == 0, b.stderr
    return str(json.loads(b.stdout)["name"])
