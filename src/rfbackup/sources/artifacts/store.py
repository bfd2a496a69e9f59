"""The artifacts area of a repository: its layout, config and key, opened for writing or reading.

A writer (the backup job) holds the recipients and the writer key; a reader (restore, check,
prune, list) holds an age identity and recovers the writer key from ``keys/``.
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass, field
from typing import Any

import pyrage

from rfbackup.errors import ConfigError, IntegrityError, NotFound
from rfbackup.sources.artifacts import PREFIX
from rfbackup.sources.artifacts.keys import WriterKey
from rfbackup.storage import Repository
from rfbackup.storage.base import read_bytes

CONFIG_KEY = f"{PREFIX}config"
KEYS = f"{PREFIX}keys/"
PACKS = f"{PREFIX}packs/"
INDEX = f"{PREFIX}index/"
SNAPSHOTS = f"{PREFIX}snapshots/"
CACHE = f"{PREFIX}cache/"
CONFIG_FORMAT = "rfbackup-artifacts/1"


@dataclass(frozen=True)
class ChunkerParams:
    avg: int
    min: int
    max: int


@dataclass
class Store:
    repo: Repository
    key: WriterKey
    chunker: ChunkerParams
    recipients: list[Any] = field(default_factory=list)
    identities: list[Any] = field(default_factory=list)
    pack_keys: dict[str, Any] = field(default_factory=dict)  # pack name -> its opened key

    def describe(self, key: str) -> str:
        return self.repo.describe(key)

    def age_encrypt(self, plain: bytes) -> bytes:
        if not self.recipients:
            raise ConfigError("artifact backups need age recipients (RFBACKUP_ENCRYPTION__...)")
        return bytes(pyrage.encrypt(plain, self.recipients))

    def age_decrypt(self, data: bytes, where: str) -> bytes:
        if not self.identities:
            raise ConfigError(
                "reading artifact snapshots needs the age identity: "
                "set RFBACKUP_ENCRYPTION__IDENTITY_FILE"
            )
        try:
            return bytes(pyrage.decrypt(data, self.identities))
        except Exception as exc:
            if "no matching keys" in str(exc).lower() or "NoMatchingKeys" in str(exc):
                raise ConfigError(
                    f"{where}: the age identity does not match this repository"
                ) from None
            raise IntegrityError(f"{where}: cannot decrypt ({exc})") from None


def read_config(repo: Repository) -> dict[str, Any]:
    try:
        raw = read_bytes(repo, CONFIG_KEY)
    except NotFound:
        raise NotFound(
            f"no artifacts repository at {repo.describe(CONFIG_KEY)}: "
            "run `rfbackup artifacts init` first"
        ) from None
    try:
        doc = json.loads(raw)
        if doc["format"] != CONFIG_FORMAT:
            raise ValueError
        ch = doc["chunker"]
        ChunkerParams(int(ch["avg"]), int(ch["min"]), int(ch["max"]))
        return dict(doc)
    except (ValueError, KeyError, TypeError):
        raise IntegrityError(f"{repo.describe(CONFIG_KEY)} is not an artifacts config") from None


def _params(doc: dict[str, Any]) -> ChunkerParams:
    ch = doc["chunker"]
    p = ChunkerParams(int(ch["avg"]), int(ch["min"]), int(ch["max"]))
    if not (64 <= p.min < p.avg < p.max <= 16 * 1024 * 1024):
        raise IntegrityError("artifacts config: impossible chunker sizes")
    return p


def initialize(repo: Repository, recipients: list[Any], avg_chunk: int) -> WriterKey:
    """Create the config and the stored (encrypted) writer key. Refuses an existing one."""
    if repo.stat(CONFIG_KEY) is not None:
        raise ConfigError(f"{repo.describe(CONFIG_KEY)} exists: the repository is initialized")
    if not recipients:
        raise ConfigError(
            "artifacts init needs age recipients: set RFBACKUP_ENCRYPTION__RECIPIENTS"
        )
    key = WriterKey.generate(secrets.token_hex(16))
    sealed = bytes(pyrage.encrypt(key.to_json(), recipients))
    repo.put(f"{KEYS}{key.name('key', key.id_key)}", sealed)
    doc = {
        "format": CONFIG_FORMAT,
        "repository": key.repo_id,
        "chunker": {"avg": avg_chunk, "min": avg_chunk // 4, "max": avg_chunk * 4},
        "key_check": key.check_value(),
    }
    repo.put(CONFIG_KEY, json.dumps(doc, indent=2).encode() + b"\n")
    return key


def open_writer(repo: Repository, key: WriterKey, recipients: list[Any]) -> Store:
    doc = read_config(repo)
    if doc.get("repository") != key.repo_id or doc.get("key_check") != key.check_value():
        raise ConfigError(
            f"the artifacts key file does not belong to the repository {repo.describe(CONFIG_KEY)}"
        )
    if not recipients:
        raise ConfigError("artifact backups need age recipients: RFBACKUP_ENCRYPTION__RECIPIENTS")
    return Store(repo, key, _params(doc), recipients=recipients)


def open_reader(repo: Repository, identities: list[Any], key_file_key: WriterKey | None) -> Store:
    """Recover the writer key with the identity; with a key file too, they must agree."""
    doc = read_config(repo)
    if not identities:
        raise ConfigError(
            "reading artifact snapshots needs the age identity: "
            "set RFBACKUP_ENCRYPTION__IDENTITY_FILE"
        )
    found: WriterKey | None = None
    for obj in repo.list(KEYS):
        try:
            plain = bytes(pyrage.decrypt(read_bytes(repo, obj.key), identities))
        except Exception:
            continue
        candidate = WriterKey.from_json(plain, repo.describe(obj.key))
        if candidate.repo_id == doc.get("repository") and (
            candidate.check_value() == doc.get("key_check")
        ):
            found = candidate
            break
    if found is None:
        raise ConfigError(
            f"the age identity opens no key of the artifacts repository {repo.describe(KEYS)}"
        )
    if key_file_key is not None and key_file_key.id_key != found.id_key:
        raise IntegrityError(
            f"{repo.describe(KEYS)}: the stored key differs from the key file: "
            "the repository was replaced"
        )
    return Store(repo, found, _params(doc), identities=identities)
