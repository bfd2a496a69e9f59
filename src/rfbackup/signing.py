"""Ed25519 signatures on manifests: a backup proves who wrote it, not only that it is whole.

A sha256 proves integrity, and anyone who can write the bucket can write a matching sha256.
The backup writer therefore signs each manifest with a private key that never leaves it, and
restores check the signature against public keys from the configuration. The manifest lists
the sha256 of the data object and of every sidecar (roles, ...), so one signature covers them.

The signature lives in the manifest itself (``"signature": {"algorithm", "key_id", "value"}``),
computed over the canonical JSON of every other field (sorted keys, no spaces). Replicas,
``get`` and retention move manifests unchanged, so they carry the signature along.

Key format: the private key is a PKCS#8 PEM file (mode 0600); a public key is one line,
``ed25519:<base64 of the 32 raw bytes>``, easy to paste into an environment variable.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from rfbackup.errors import ConfigError, IntegrityError
from rfbackup.logs import log

if TYPE_CHECKING:
    from rfbackup.config import Settings, SigningOptions
    from rfbackup.manifest import Manifest

PREFIX = "ed25519:"
ALGORITHM = "ed25519"


def payload(doc: dict[str, Any]) -> bytes:
    """The bytes a signature covers: the manifest without its signature, canonical JSON."""
    rest = {k: v for k, v in doc.items() if k != "signature"}
    return json.dumps(rest, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def _raw(public: Ed25519PublicKey) -> bytes:
    return public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def key_id(public: Ed25519PublicKey) -> str:
    return hashlib.sha256(_raw(public)).hexdigest()[:16]


def public_text(public: Ed25519PublicKey) -> str:
    return PREFIX + base64.b64encode(_raw(public)).decode()


def parse_public(text: str) -> Ed25519PublicKey:
    try:
        if not text.startswith(PREFIX):
            raise ValueError
        return Ed25519PublicKey.from_public_bytes(
            base64.b64decode(text[len(PREFIX) :], validate=True)
        )
    except (ValueError, binascii.Error):
        raise ConfigError(f"{text[:24]!r}... is not a public key (ed25519:BASE64)") from None


def warn_if_shared(path: Path, what: str) -> None:
    """A secret file that others can read is a secret no longer: say so on every run."""
    try:
        mode = path.stat().st_mode
    except OSError:
        return
    # Group access is fine for our own group (a Kubernetes Secret volume with fsGroup).
    if mode & 0o007 or (mode & 0o070 and path.stat().st_gid != os.getgid()):
        log.warning("%s %s is readable by others (mode %o): chmod 600 it", what, path, mode & 0o777)


def generate(private_path: Path) -> tuple[Path, str]:
    """A new keypair: the private key 0600 at ``private_path`` (never overwritten) and the
    public key beside it as ``NAME.pub``. Returns the public file and the public key text."""
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    public = public_text(key.public_key())
    pub_path = private_path.with_name(private_path.name + ".pub")
    for path in (private_path, pub_path):
        if path.exists() or path.is_symlink():
            raise ConfigError(f"{path} already exists; refusing to overwrite a key")
    try:
        private_path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW
        fd = os.open(private_path, flags, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(pem)
        fd = os.open(pub_path, flags, 0o644)
        with os.fdopen(fd, "w") as out:
            out.write(public + "\n")
    except OSError as exc:
        raise ConfigError(f"cannot write key {private_path}: {exc.strerror}") from None
    return pub_path, public


@dataclass
class Signer:
    key: Ed25519PrivateKey

    @classmethod
    def from_options(cls, options: SigningOptions) -> Signer | None:
        """The backup writer's key, loaded before any work starts; None when none is set."""
        path = options.key_file
        if path is None:
            return None
        warn_if_shared(path, "signing key")
        try:
            key = serialization.load_pem_private_key(path.read_bytes(), password=None)
        except OSError as exc:
            raise ConfigError(f"cannot read signing key {path}: {exc.strerror}") from None
        except (ValueError, TypeError):
            raise ConfigError(f"{path} is not an unencrypted PEM private key") from None
        if not isinstance(key, Ed25519PrivateKey):
            raise ConfigError(f"{path} is not an Ed25519 key")
        return cls(key)

    def sign(self, manifest: Manifest) -> None:
        doc = manifest.document()
        manifest.signature = {
            "algorithm": ALGORITHM,
            "key_id": key_id(self.key.public_key()),
            "value": base64.b64encode(self.key.sign(payload(doc))).decode(),
        }


def sign_manifest(settings: Settings, manifest: Manifest) -> None:
    """Sign with the configured key; outside development, say loudly when there is none."""
    signer = Signer.from_options(settings.signing)
    if signer is not None:
        signer.sign(manifest)
    elif settings.env.value != "development":
        log.warning("%s is not signed: set RFBACKUP_SIGNING__KEY_FILE", manifest.name)


def check(
    options: SigningOptions,
    manifest: Manifest | None,
    where: str,
    allow_unverified: bool,
    environment: str = "development",
) -> str:
    """Refuse a manifest not signed by a trusted key; returns what was proven, for reports.

    Without any trusted key configured: production refuses (unless ``signing.required`` is
    set false), staging warns, development stays quiet. No manifest at all is the caller's
    business (it has its own --allow-unverified rule).
    """
    development = environment == "development"
    required = options.required if options.required is not None else environment == "production"
    if manifest is None:
        return "no manifest"
    trusted = {key_id(k): k for k in map(parse_public, options.trusted_keys())}
    if not trusted:
        problem = "no trusted public key is configured (RFBACKUP_SIGNING__PUBLIC_KEYS)"
        if required:
            why = "signatures are required" + (" in production" if options.required is None else "")
            return _refuse(f"{where}: {problem}, and {why}", allow_unverified)
        # Development restores stay quiet; staging and production say it on every restore.
        (log.debug if development else log.warning)(
            "signature of %s NOT checked: %s", where, problem
        )
        return "unchecked"
    sig = manifest.signature
    if not sig:
        return _refuse(f"{where} is not signed: its origin cannot be proven", allow_unverified)
    public = trusted.get(str(sig.get("key_id")))
    if sig.get("algorithm") != ALGORITHM or public is None:
        return _refuse(
            f"{where} is signed by key {sig.get('key_id')!r}, which is not trusted",
            allow_unverified,
        )
    try:
        public.verify(
            base64.b64decode(str(sig.get("value")), validate=True), manifest.signed_bytes()
        )
    except (InvalidSignature, ValueError, binascii.Error):
        return _refuse(
            f"{where}: the manifest's signature does not match: it was changed after signing",
            allow_unverified,
        )
    return f"valid (key {sig['key_id']})"


def _refuse(message: str, allow_unverified: bool) -> str:
    if not allow_unverified:
        raise IntegrityError(f"{message}; re-run with --allow-unverified to use it anyway")
    log.warning("!!! %s: continuing because of --allow-unverified !!!", message)
    return "UNVERIFIED"
