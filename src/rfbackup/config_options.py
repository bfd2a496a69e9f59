"""Where backups go and how they are protected: S3 and the replica, age encryption, locks,
signatures. Models only; config.py reads them."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator
from pydantic_settings import NoDecode

from rfbackup.config_lean import FIELDS, lock_directory
from rfbackup.errors import ConfigError
from rfbackup.storage import check_url

if TYPE_CHECKING:
    pass


class S3Options(BaseModel):
    """How to reach an S3 repository. Unset values fall back to the standard AWS chain."""

    model_config = ConfigDict(extra="forbid")  # a typo is an error, not a default

    endpoint_url: str | None = None
    region: str | None = None
    access_key_id: str | None = None
    secret_access_key: SecretStr | None = None
    sse: Literal["AES256", "aws:kms"] | None = None  # server-side encryption
    kms_key_id: str | None = None
    part_size_mb: int = Field(default=16, ge=5, le=5120)
    concurrency: int = Field(default=4, ge=1, le=64)
    max_attempts: int = Field(default=8, ge=1, le=20)  # retries on throttling, 5xx, timeouts

    def storage_settings(self) -> Any:
        from rfbackup.storage.s3 import S3Settings

        return S3Settings(
            endpoint_url=self.endpoint_url,
            region=self.region,
            access_key_id=self.access_key_id,
            secret_access_key=(
                self.secret_access_key.get_secret_value() if self.secret_access_key else None
            ),
            sse=self.sse,
            kms_key_id=self.kms_key_id,
            part_size=self.part_size_mb * 1024 * 1024,
            concurrency=self.concurrency,
            max_attempts=self.max_attempts,
        )


class ReplicaOptions(S3Options):
    """The cross-region copy: its own URL, endpoint, region and credentials."""

    url: str | None = None  # s3://bucket/prefix in the other region
    required: bool = True  # a failed replica copy fails the run

    @field_validator("url")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        return None if value is None else check_url(value, "replica")


class EncryptionOptions(BaseModel):
    """Client-side age encryption. Backups need only public keys; restores the identity file."""

    model_config = ConfigDict(extra="forbid")  # a typo is an error, not a default

    recipients: Annotated[list[str], NoDecode] = []  # age1... (comma or space separated)
    recipients_file: Path | None = None  # one age1... per line, like `age -R`
    identity_file: Path | None = None  # AGE-SECRET-KEY-1..., for restores only
    allow_unencrypted_production: bool = False

    @field_validator("recipients", mode="before")
    @classmethod
    def _split(cls, value: object) -> object:
        if isinstance(value, str):
            return [v for v in value.replace(",", " ").split() if v]
        return value

    def recipient_keys(self) -> list[str]:
        keys = list(self.recipients)
        if self.recipients_file is not None:
            try:
                text = self.recipients_file.read_text()
            except OSError as exc:
                raise ConfigError(
                    f"cannot read recipients file {self.recipients_file}: {exc.strerror}"
                ) from None
            # Like `age -R`: one recipient per line; blank lines and '#' comments ignored.
            keys += [line.strip() for line in text.splitlines()]
        return [k for k in keys if k and not k.startswith("#")]

    def identities(self) -> list[Any]:
        """The age identities of ``identity_file`` (pyrage objects), or [] when none is set."""
        if self.identity_file is None:
            return []
        from rfbackup.encryption import load_identities

        return load_identities(self.identity_file)


class LockOptions(BaseModel):
    """Where local locks live, and how long a lease in the repository lasts (docs/security.md).

    Default folder: /run/rfbackup for root, else $XDG_STATE_HOME/rfbackup/locks
    (~/.local/state/rfbackup/locks): private to the user, the same under cron and a login.
    """

    model_config = ConfigDict(extra="forbid")  # a typo is an error, not a default

    # RFBACKUP_LOCKS__DIR, RFBACKUP_LOCKS__LEASE_SECONDS: defaults and bounds shared with
    # config_lean.py (rfbackup list reads them without pydantic).
    dir: Path | None = FIELDS["locks", "dir"].default  # owned by the user, mode 0700
    lease_seconds: int = Field(
        default=FIELDS["locks", "lease_seconds"].default,
        ge=FIELDS["locks", "lease_seconds"].ge,
        le=FIELDS["locks", "lease_seconds"].le,
    )  # renewed every third of this

    def directory(self) -> Path:
        return lock_directory(self.dir)


class SigningOptions(BaseModel):
    """Ed25519 manifest signatures (see docs/security.md). The writer holds the private key;
    restores trust only the listed public keys."""

    model_config = ConfigDict(extra="forbid")  # a typo is an error, not a default

    key_file: Path | None = None  # private key (PEM, 0600) of the backup writer; never logged
    public_keys: Annotated[list[str], NoDecode] = []  # ed25519:BASE64, comma or space separated
    public_keys_file: Path | None = None  # one ed25519:... per line, # comments
    # Refuse restores when no public key is configured at all; unset: only in production.
    required: bool | None = None

    @field_validator("public_keys", mode="before")
    @classmethod
    def _split(cls, value: object) -> object:
        if isinstance(value, str):
            return [v for v in value.replace(",", " ").split() if v]
        return value

    def trusted_keys(self) -> list[str]:
        keys = list(self.public_keys)
        if self.public_keys_file is not None:
            try:
                lines = self.public_keys_file.read_text().splitlines()
            except OSError as exc:
                raise ConfigError(
                    f"cannot read public keys file {self.public_keys_file}: {exc.strerror}"
                ) from None
            keys += [ln.strip() for ln in lines if ln.strip() and not ln.lstrip().startswith("#")]
        return keys
