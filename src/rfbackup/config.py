"""The one place that reads configuration: ``rfbackup.toml`` plus environment variables.

Precedence, highest first: command-line overrides (passed to :func:`load`), environment
variables, ``rfbackup.toml`` (or the file named by ``RFBACKUP_CONFIG``), defaults.

The database uses the libpq conventions (``PGHOST`` ... or ``DATABASE_URL``). Secrets are
held as :class:`pydantic.SecretStr` and only ever leave this module inside a child
process environment, never in argv, logs or manifests.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import (
    AliasChoices,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
)
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from rfbackup.config_lean import FIELDS, Environment, config_path
from rfbackup.errors import ConfigError

if TYPE_CHECKING:
    from rfbackup.sources.postgres.target import PostgresTarget
    from rfbackup.sources.redis.target import RedisTarget
from rfbackup.config_options import (
    EncryptionOptions,
    LockOptions,
    ReplicaOptions,
    S3Options,
    SigningOptions,
)
from rfbackup.config_policies import ArtifactsPolicy, PitrPolicy, PostgresPolicy, RedisPolicy
from rfbackup.limits import MAX_DAYS as MAX_DAYS  # re-exported
from rfbackup.ops.options import (
    DrillOptions,
    FreshnessOptions,
    KubernetesOptions,
    MetricsOptions,
    ModeOptions,
    ScheduleOptions,
)
from rfbackup.storage import check_url
from rfbackup.storage.objectlock import ObjectLockOptions

__all__ = [
    "ArtifactsPolicy",
    "EncryptionOptions",
    "Environment",
    "LockOptions",
    "PitrPolicy",
    "PostgresPolicy",
    "RedisPolicy",
    "ReplicaOptions",
    "S3Options",
    "Settings",
    "SigningOptions",
    "config_path",
    "load",
]


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="RFBACKUP_",
        env_nested_delimiter="__",
        extra="ignore",
        populate_by_name=True,
    )

    # The settings config_lean.py also reads (rfbackup list): their defaults live there.
    env: Environment = FIELDS["env",].default
    backup_dir: Path = FIELDS["backup_dir",].default
    repository: str | None = FIELDS["repository",].default
    log_file: Path | None = FIELDS["log_file",].default
    postgres: PostgresPolicy = PostgresPolicy()
    pitr: PitrPolicy = PitrPolicy()  # RFBACKUP_PITR__KEEP_DAYS=14 ...
    artifacts: ArtifactsPolicy = ArtifactsPolicy()  # RFBACKUP_ARTIFACTS__PATHS=/srv/artifacts
    redis: RedisPolicy = RedisPolicy()  # RFBACKUP_REDIS__KEEP_DAYS=7 ...
    s3: S3Options = S3Options()  # RFBACKUP_S3__SSE=AES256, RFBACKUP_S3__KMS_KEY_ID=...
    encryption: EncryptionOptions = EncryptionOptions()  # RFBACKUP_ENCRYPTION__RECIPIENTS=age1...
    signing: SigningOptions = SigningOptions()  # RFBACKUP_SIGNING__KEY_FILE, __PUBLIC_KEYS
    locks: LockOptions = LockOptions()  # RFBACKUP_LOCKS__DIR, RFBACKUP_LOCKS__LEASE_SECONDS
    replica: ReplicaOptions = ReplicaOptions()  # RFBACKUP_REPLICA__URL=s3://... and its access
    object_lock: ObjectLockOptions = ObjectLockOptions()  # RFBACKUP_OBJECT_LOCK__MODE=compliance
    metrics: MetricsOptions = MetricsOptions()  # RFBACKUP_METRICS__PUSHGATEWAY_URL=...
    schedule: ScheduleOptions = ScheduleOptions()  # RFBACKUP_SCHEDULE__POSTGRES="0 2 * * *"
    freshness: FreshnessOptions = FreshnessOptions()  # RFBACKUP_FRESHNESS__POSTGRES_HOURS=48
    kubernetes: KubernetesOptions = KubernetesOptions()  # RFBACKUP_KUBERNETES__IMAGE=...
    mode: ModeOptions = ModeOptions()  # RFBACKUP_MODE__NAMESPACE=..., STANDBY/LIVE switching
    drill: DrillOptions = DrillOptions()  # RFBACKUP_DRILL__DATABASE_URL: a scratch server
    fallback_dir: Path | None = None  # RFBACKUP_FALLBACK_DIR; staging defaults to backup_dir
    pg_bin: Path | None = None  # RFBACKUP_PG_BIN: folder of pg_dump/psql/... (default: PATH)
    tmp_dir: Path | None = None  # RFBACKUP_TMP_DIR: scratch space for parallel pg_restore

    # libpq conventions, read without the RFBACKUP_ prefix.
    database_url: SecretStr | None = Field(default=None, validation_alias="DATABASE_URL")
    pghost: str | None = Field(default=None, validation_alias=AliasChoices("PGHOST", "pghost"))
    pgport: int | None = Field(default=None, validation_alias=AliasChoices("PGPORT", "pgport"))
    pguser: str | None = Field(default=None, validation_alias=AliasChoices("PGUSER", "pguser"))
    pgpassword: SecretStr | None = Field(
        default=None, validation_alias=AliasChoices("PGPASSWORD", "pgpassword")
    )
    pgdatabase: str | None = Field(
        default=None, validation_alias=AliasChoices("PGDATABASE", "pgdatabase")
    )

    # Redis: REDIS_URL (redis:// or rediss://, ACL user, password, db) or REDIS_HOST & co.
    redis_url: SecretStr | None = Field(
        default=None, validation_alias=AliasChoices("REDIS_URL", "redis_url")
    )
    redis_host: str | None = Field(
        default=None, validation_alias=AliasChoices("REDIS_HOST", "redis_host")
    )
    redis_port: int | None = Field(
        default=None, validation_alias=AliasChoices("REDIS_PORT", "redis_port")
    )
    redis_password: SecretStr | None = Field(
        default=None, validation_alias=AliasChoices("REDIS_PASSWORD", "redis_password")
    )
    redis_tls_ca_file: Path | None = Field(  # CA bundle for rediss:// (default: the system's)
        default=None, validation_alias=AliasChoices("REDIS_TLS_CA_FILE", "redis_tls_ca_file")
    )

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (
            init_settings,
            env_settings,
            TomlConfigSettingsSource(settings_cls, toml_file=config_path()),
        )

    @field_validator("repository")
    @classmethod
    def _repository(cls, value: str | None) -> str | None:
        return None if value is None else check_url(value)

    @property
    def primary_repository(self) -> str:
        """The repository URL backups of this environment go to."""
        return self.repository or str(self.backup_dir)

    def open_repository(self, url: str | None = None) -> Any:
        """The repository at ``url`` (default: this environment's primary)."""
        from rfbackup.storage import open_repository

        url = url or self.primary_repository
        # Only S3 URLs need boto3: local backups skip its import (~0.3 s of start-up).
        if not url.startswith("s3://"):
            return open_repository(url)
        return open_repository(url, self.s3.storage_settings(), self.lock_policy())

    def lock_policy(self) -> Any:
        """The Object Lock policy (storage/objectlock.py): the keep-days of each component
        (its registered retention, for keys under ``COMPONENT/``; PITR's for base/ and wal/;
        artifacts' own keep-days, which only `rfbackup artifacts prune` applies)."""
        from rfbackup.engine.registry import retention
        from rfbackup.storage.objectlock import lock_policy

        days = {c: keep.days for c, keep in retention(self).items()}
        days.update(base=self.pitr.keep_days, wal=self.pitr.keep_days)
        days.update(artifacts=self.artifacts.keep_days)
        o = self.object_lock
        production = self.env is Environment.production
        return lock_policy(o.mode, o.margin, days, o.keep_days, production)

    def open_replica(self) -> Any:
        """The replica repository, or None when none is configured."""
        if not self.replica.url:
            return None
        from rfbackup.storage import open_repository

        return open_repository(
            self.replica.url, self.replica.storage_settings(), self.lock_policy()
        )

    def open_fallback(self) -> Any:
        """Where backups go when the primary S3 repository is unreachable (staging: the local
        backup folder), or None. Only meaningful when the primary is remote."""
        if not self.primary_repository.startswith("s3://"):
            return None
        folder = self.fallback_dir
        if folder is None and self.env is Environment.staging:
            folder = self.backup_dir
        if folder is None:
            return None
        from rfbackup.storage.local import LocalRepository

        return LocalRepository(folder, layout="component")

    def postgres_target(self) -> PostgresTarget:
        from rfbackup.sources.postgres.target import PostgresTarget

        return PostgresTarget.from_settings(self)

    def drill_settings(self) -> Settings:
        """These settings with the drill's scratch server as the database (when one is set)."""
        if self.drill.database_url is None:
            return self
        return self.model_copy(
            update={
                "database_url": self.drill.database_url,
                "pghost": None,
                "pgport": None,
                "pguser": None,
                "pgpassword": None,
                "pgdatabase": None,
            }
        )

    def redis_target(self) -> RedisTarget:
        from rfbackup.sources.redis.target import RedisTarget

        return RedisTarget.from_settings(self)

    def backup_recipients(self) -> list[str]:
        """The age recipients to encrypt to; refuses plaintext production backups."""
        keys = self.encryption.recipient_keys()
        if (
            not keys
            and self.env is Environment.production
            and not self.encryption.allow_unencrypted_production
        ):
            raise ConfigError(
                "production backups must be encrypted: set RFBACKUP_ENCRYPTION__RECIPIENTS "
                "(age1... public keys), or RFBACKUP_ENCRYPTION__ALLOW_UNENCRYPTED_PRODUCTION=true"
            )
        return keys


def _read_toml(path: Path) -> dict[str, Any]:
    """The configuration file as a dict ({} when there is none), for the key check."""
    import tomllib

    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except (FileNotFoundError, IsADirectoryError):
        return {}
    except OSError as exc:
        raise ConfigError(f"cannot read configuration file {path}: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"cannot parse configuration file {path}: {exc}") from None


def load(**overrides: Any) -> Settings:
    """Read the configuration once. ``overrides`` are command-line values (None = not given)."""
    given = {k: v for k, v in overrides.items() if v is not None}
    from rfbackup.config_keys import check_environment, check_file

    check_environment(os.environ, Settings)
    check_file(config_path(), _read_toml(config_path()), Settings)
    try:
        return Settings(**given)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "configuration"
        raise ConfigError(f"invalid configuration for {where}: {first['msg']}") from None
    except OSError as exc:
        raise ConfigError(f"cannot read configuration file: {exc}") from None
    except ValueError as exc:  # malformed TOML
        raise ConfigError(f"cannot parse configuration: {exc}") from None
