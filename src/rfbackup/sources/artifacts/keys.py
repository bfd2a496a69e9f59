"""The writer key: what a backup job holds besides the age public recipients.

It holds the 32-byte BLAKE3 key that names chunks (so listing the bucket tells nothing about
content) and the FastCDC gear seed (so chunk sizes do not fingerprint known files). Sub-keys
derived from it seal the index and the stat cache (ChaCha20-Poly1305): the backup job must read
those to deduplicate; they hold chunk ids, sizes and offsets, never names or content.

A copy of the writer key is stored in the repository age-encrypted to the recipients, so a
restore needs only the age identity. A restore that also has the key file refuses a repository
whose stored key differs (a bucket forged from the public recipients).
"""

from __future__ import annotations

import json
import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import blake3
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

from rfbackup.errors import ConfigError, IntegrityError

KEY_FORMAT = "rfbackup-artifacts-key/1"
ID_BYTES = 32
_NONCE = 12


@dataclass(frozen=True)
class WriterKey:
    repo_id: str
    id_key: bytes
    seed: int

    @classmethod
    def generate(cls, repo_id: str) -> WriterKey:
        return cls(repo_id, secrets.token_bytes(32), secrets.randbits(31) or 1)

    def chunk_id(self, data: bytes | bytearray | memoryview) -> bytes:
        return blake3.blake3(data, key=self.id_key).digest()

    def hasher(self) -> Any:
        return blake3.blake3(key=self.id_key)

    def _derived(self, context: str) -> bytes:
        return blake3.blake3(
            self.id_key, derive_key_context=f"rfbackup artifacts {context}"
        ).digest()

    def name(self, context: str, data: bytes) -> str:
        """A keyed name (hex) for ``data`` in ``context``: reveals nothing without the key."""
        return blake3.blake3(data, key=self._derived(context)).hexdigest()[:32]

    def check_value(self) -> str:
        """Stored in the config: tells a wrong key file from the right one, reveals nothing."""
        return self.name("check", b"rfbackup")

    def seal(self, context: str, plain: bytes | bytearray) -> bytes:
        nonce = secrets.token_bytes(_NONCE)
        aead = ChaCha20Poly1305(self._derived(f"seal {context}"))
        return nonce + aead.encrypt(nonce, plain, context.encode())

    def open_sealed(self, context: str, sealed: bytes, where: str) -> bytes:
        aead = ChaCha20Poly1305(self._derived(f"seal {context}"))
        try:
            return aead.decrypt(sealed[:_NONCE], sealed[_NONCE:], context.encode())
        except (InvalidTag, ValueError):
            raise IntegrityError(f"{where}: damaged or not written with this key") from None

    def to_json(self) -> bytes:
        doc = {
            "format": KEY_FORMAT,
            "repository": self.repo_id,
            "id_key": self.id_key.hex(),
            "seed": self.seed,
        }
        return json.dumps(doc, sort_keys=True).encode() + b"\n"

    @classmethod
    def from_json(cls, raw: bytes, where: str) -> WriterKey:
        try:
            doc = json.loads(raw)
            if doc.get("format") != KEY_FORMAT:
                raise ValueError("format")
            key = bytes.fromhex(doc["id_key"])
            seed = int(doc["seed"])
            if len(key) != 32 or not 0 < seed < 2**31:
                raise ValueError("length")
            return cls(str(doc["repository"]), key, seed)
        except (ValueError, KeyError, TypeError, AttributeError):
            raise ConfigError(f"{where} is not an rfbackup artifacts key") from None

    @classmethod
    def load(cls, path: Path) -> WriterKey:
        from rfbackup.signing import warn_if_shared

        warn_if_shared(path, "artifacts key file")
        try:
            raw = path.read_bytes()
        except OSError as exc:
            raise ConfigError(f"cannot read artifacts key file {path}: {exc.strerror}") from None
        return cls.from_json(raw, str(path))

    def save(self, path: Path) -> None:
        """Write the key file 0600, never over an existing one."""
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        except FileExistsError:
            raise ConfigError(f"{path} exists: refusing to overwrite a key file") from None
        except OSError as exc:
            raise ConfigError(f"cannot write {path}: {exc.strerror}") from None
        with os.fdopen(fd, "wb") as fh:
            fh.write(self.to_json())
