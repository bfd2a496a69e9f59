"""The one place that reads configuration: ``rfbackup.toml`` plus environment variables.

Precedence, highest first: command-line overrides (passed to :func:`load`), environment
variables, ``rfbackup.toml`` (or the file named by ``RFBACKUP_CONFIG``), defaults.

The database uses the libpq conventions (``PGHOST`` ... or ``DATABASE_URL``). Secrets are
held as :class:`pydantic.SecretStr` and only ever leave this module inside a child
process environment, never in argv, logs or manifests.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    AliasChoices,
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
)
from pydantic_settings import (
    BaseSettings,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from rfbackup.errors import ConfigError
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

Compression = Literal["gzip", "zstd"]
DumpFormat = Literal["plain", "custom"]


class Environment(StrEnum):
    development = "development"
    staging = "staging"
    production = "production"


class PostgresPolicy(BaseModel):
    """How PostgreSQL backups are made and kept."""

    model_config = ConfigDict(extra="forbid")  # a typo is an error, not a default

    compression: Compression = "gzip"
    gzip_level: int = Field(default=4, ge=1, le=12)  # libdeflate: 4 is ~3% larger than gzip -6
    zstd_level: int = Field(default=3, ge=1, le=19)
    compression_threads: int = Field(default_factory=lambda: min(os.cpu_count() or 1, 8), ge=1)
    keep_days: int = Field(default=30, ge=0, le=MAX_DAYS)
    keep_min: int = Field(default=3, ge=0)
    restore_jobs: int = Field(default=2, ge=1, le=64)


class RedisPolicy(BaseModel):
    """How Redis snapshots are taken and kept (``[redis]``, ``RFBACKUP_REDIS__*``)."""

    model_config = ConfigDict(extra="forbid")  # a typo is an error, not a default

    # The RDB is LZF-compressed by Redis already: zstd level 1 stores about what gzip -6
    # does (benchmarks/redis_backup.py) for a fifth of gzip level 4's CPU.
    compression: Compression = "zstd"
    gzip_level: int = Field(default=4, ge=1, le=12)
    zstd_level: int = Field(default=1, ge=1, le=19)
    compression_threads: int = Field(default_factory=lambda: min(os.cpu_count() or 1, 8), ge=1)
    keep_days: int = Field(default=7, ge=0, le=MAX_DAYS)  # the runbook: kept 7 days
    keep_min: int = Field(default=24, ge=0)  # hourly: a day's snapshots survive any gap
    fetch_timeout_seconds: float = Field(default=300, gt=0)  # silence before giving up
    bgsave_fallback: bool = True  # when SYNC is refused: BGSAVE and read the file


class PitrPolicy(BaseModel):
    """Physical base backups and the WAL archive (point-in-time recovery)."""

    model_config = ConfigDict(extra="forbid")  # a typo is an error, not a default

    zstd_level: int = Field(default=3, ge=1, le=19)  # base backups, like pgBackRest
    wal_zstd_level: int = Field(default=1, ge=1, le=19)  # WAL: half the CPU of level 3
    compression_threads: int = Field(default_factory=lambda: min(os.cpu_count() or 1, 8), ge=1)
    # Base backups; WAL follows the oldest kept.
    keep_days: int = Field(default=14, ge=0, le=MAX_DAYS)
    keep_min: int = Field(default=2, ge=1)
    push_batch: int = Field(default=32, ge=1, le=256)  # ready segments one wal-push call sends
    push_threads: int = Field(default=4, ge=1, le=64)
    prefetch: int = Field(default=8, ge=0, le=256)  # segments wal-fetch fetches ahead
    archive_wait_seconds: int = Field(default=300, ge=1)  # base backup waits for its WAL
    checkpoint: Literal["fast", "spread"] = "fast"


class ArtifactsPolicy(BaseModel):
    """Artifact volume snapshots (docs/artifacts.md): what to back up and how long to keep it."""

    model_config = ConfigDict(extra="forbid")  # a typo is an error, not a default

    paths: Annotated[list[Path], NoDecode] = []  # RFBACKUP_ARTIFACTS__PATHS=/srv/a,/srv/b
    key_file: Path | None = None  # the writer key (chunk ids), made by `rfbackup artifacts init`
    keep_days: int = Field(default=90, ge=0, le=MAX_DAYS)
    keep_min: int = Field(default=3, ge=0)  # complete snapshots always kept, whatever their age
    pack_size_mb: int = Field(default=16, ge=1, le=512)
    chunk_size_kb: int = Field(default=1024, ge=64, le=4096)  # FastCDC average, set at init
    zstd_level: int = Field(default=3, ge=1, le=19)
    prune_grace_hours: int = Field(default=24, ge=0)  # packs no index names, younger: kept

    @field_validator("paths", mode="before")
    @classmethod
    def _split(cls, value: object) -> object:
        if isinstance(value, str):
            return [v for v in value.replace(",", " ").split() if v]
        return value


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

    dir: Path | None = None  # RFBACKUP_LOCKS__DIR; must be owned by the user, mode 0700
    lease_seconds: int = Field(default=300, ge=3, le=86400)  # renewed every third of this

    def directory(self) -> Path:
        if self.dir is not None:
            return self.dir
        if os.geteuid() == 0:
            return Path("/run/rfbackup")
        state = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
        return Path(state) / "rfbackup" / "locks"


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


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="RFBACKUP_",
        env_nested_delimiter="__",
        extra="ignore",
        populate_by_name=True,
    )

    env: Environment = Environment.development
    backup_dir: Path = Path("backups")
    repository: str | None = None
    log_file: Path | None = Path("logs/backup.log")
    postgres: PostgresPolicy = PostgresPolicy()
    pitr: PitrPolicy = PitrPolicy()  # RFBACKUP_PITR__KEEP_DAYS=14 ...
    artifacts: ArtifactsPolicy = ArtifactsPolicy()  # RFBACKUP_ARTIFACTS__PATHS=/srv/artifacts
    redis: RedisPolicy = RedisPolicy()  # RFBACKUP_REDIS__KEEP_DAYS=7 ...
    s3: S3Options = S3Options()  # RFBACKUP_S3__SSE=AES256, RFBACKUP_S3__KMS_KEY_ID=...
    encryption: EncryptionOptions = EncryptionOptions()  # RFBACKUP_ENCRYPTION__RECIPIENTS=age1...
    signing: SigningOptions = SigningOptions()  # RFBACKUP_SIGNING__KEY_FILE, __PUBLIC_KEYS
    locks: LockOptions = LockOptions()  # RFBACKUP_LOCKS__DIR, RFBACKUP_LOCKS__LEASE_SECONDS
    replica: ReplicaOptions = ReplicaOptions()  # RFBACKUP_REPLICA__URL=s3://... and its access
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
        return open_repository(url, self.s3.storage_settings() if url.startswith("s3://") else None)

    def open_replica(self) -> Any:
        """The replica repository, or None when none is configured."""
        if not self.replica.url:
            return None
        from rfbackup.storage import open_repository

        return open_repository(self.replica.url, self.replica.storage_settings())

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


_LIBPQ_KEYS = ("host", "port", "user", "dbname")


@dataclass(frozen=True)
class PostgresTarget:
    """Where the database lives. ``password`` never appears in ``repr`` or argv."""

    host: str | None
    port: int | None
    user: str | None
    dbname: str | None
    password: SecretStr | None
    extra: tuple[tuple[str, str], ...] = ()  # other libpq keywords from DATABASE_URL (sslmode...)
    bin_dir: Path | None = None  # where the PostgreSQL client programs are; None: PATH

    @classmethod
    def from_settings(cls, s: Settings) -> PostgresTarget:
        if s.database_url is not None:
            from psycopg.conninfo import conninfo_to_dict

            try:
                parts = conninfo_to_dict(s.database_url.get_secret_value())
            except Exception:
                raise ConfigError("DATABASE_URL is not a valid PostgreSQL URL") from None
            password = parts.pop("password", None)
            port = parts.pop("port", None)
            return cls(
                host=_str_or_none(parts.pop("host", None)) or s.pghost,
                port=int(str(port)) if port else s.pgport,
                user=_str_or_none(parts.pop("user", None)) or s.pguser,
                dbname=_str_or_none(parts.pop("dbname", None)) or s.pgdatabase,
                password=SecretStr(str(password)) if password else s.pgpassword,
                extra=tuple(sorted((k, str(v)) for k, v in parts.items() if v is not None)),
                bin_dir=s.pg_bin,
            )
        return cls(s.pghost, s.pgport, s.pguser, s.pgdatabase, s.pgpassword, bin_dir=s.pg_bin)

    def with_dbname(self, dbname: str) -> PostgresTarget:
        return replace(self, dbname=dbname)

    @property
    def server(self) -> str:
        """The server for messages: ``db.example:5432``, ``/run/postgresql:5432`` (a socket
        directory) or ``local socket`` (libpq's default)."""
        host = self.host or "local socket"
        return f"{host}:{self.port}" if self.port else host

    @property
    def display(self) -> str:
        return f"{self.server}/{self.dbname or '(default database)'}"

    def connect_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for ``psycopg.connect``."""
        kw: dict[str, Any] = {k: v for k, v in self.extra}
        for key in _LIBPQ_KEYS:
            value = getattr(self, key)
            if value is not None:
                kw[key] = value
        if self.password is not None:
            kw["password"] = self.password.get_secret_value()
        kw.setdefault("connect_timeout", 10)
        return kw

    def child_env(self, base: dict[str, str] | None = None) -> dict[str, str]:
        """Environment for pg_dump / psql / pg_restore: libpq variables, secret included.

        The password travels in ``PGPASSWORD`` of the child's environment only, which other
        users cannot read (``/proc/PID/environ`` is private to the owner).
        """
        env = dict(os.environ if base is None else base)
        for key in list(env):
            if key.startswith("PG") or key == "DATABASE_URL":
                if key in ("PGPASSFILE", "PGSSLROOTCERT", "PGSERVICEFILE", "PGSYSCONFDIR"):
                    continue
                del env[key]
        mapping = {"host": "PGHOST", "port": "PGPORT", "user": "PGUSER", "dbname": "PGDATABASE"}
        for key, var in mapping.items():
            value = getattr(self, key)
            if value is not None:
                env[var] = str(value)
        if self.password is not None:
            env["PGPASSWORD"] = self.password.get_secret_value()
        extra_vars = {
            "sslmode": "PGSSLMODE",
            "sslrootcert": "PGSSLROOTCERT",
            "application_name": "PGAPPNAME",
            "connect_timeout": "PGCONNECT_TIMEOUT",
            "options": "PGOPTIONS",
        }
        for key, value in self.extra:
            if key in extra_vars:
                env[extra_vars[key]] = value
        env.setdefault("PGCONNECT_TIMEOUT", "10")
        return env


def config_path() -> Path:
    """The configuration file: ``RFBACKUP_CONFIG``, else ``rfbackup.toml`` here."""
    return Path(os.environ.get("RFBACKUP_CONFIG", "rfbackup.toml"))


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


@dataclass(frozen=True)
class RedisTarget:
    """A Redis instance. ``password`` never appears in ``repr``, argv, logs or manifests."""

    host: str = "127.0.0.1"
    port: int = 6379
    username: str | None = None
    password: SecretStr | None = None
    db: int | None = None  # the database named in the URL; None: all of them
    tls: bool = False
    tls_ca_file: Path | None = None  # None: the system's CA store

    @classmethod
    def from_settings(cls, s: Settings) -> RedisTarget:
        if s.redis_url is not None:
            t = cls.from_url(s.redis_url.get_secret_value(), fallback_password=s.redis_password)
            return replace(t, tls_ca_file=s.redis_tls_ca_file)
        return cls(
            host=s.redis_host or "127.0.0.1",
            port=s.redis_port or 6379,
            password=s.redis_password,
        )

    @classmethod
    def from_url(cls, url: str, fallback_password: SecretStr | None = None) -> RedisTarget:
        from urllib.parse import unquote, urlsplit

        bad = ConfigError("REDIS_URL is not a valid redis:// or rediss:// URL")
        try:
            parts = urlsplit(url)
            port = parts.port or 6379
        except ValueError:
            raise bad from None
        if parts.scheme not in ("redis", "rediss") or not parts.hostname:
            raise bad
        path = parts.path.strip("/")
        if path and not path.isdigit():
            raise ConfigError("REDIS_URL: the path must be a database number, such as /0")
        password = unquote(parts.password) if parts.password else None
        return cls(
            host=parts.hostname,
            port=port,
            username=unquote(parts.username) if parts.username else None,
            password=SecretStr(password) if password else fallback_password,
            db=int(path) if path else None,
            tls=parts.scheme == "rediss",
        )

    @property
    def display(self) -> str:
        """host:port and the databases, for messages and the lineage (no password)."""
        dbs = "all databases" if self.db is None else f"db {self.db}"
        return f"{self.host}:{self.port} ({dbs})"

    @property
    def lineage(self) -> str:
        return f"{self.host}:{self.port}/" + ("all" if self.db is None else str(self.db))


def _str_or_none(value: object) -> str | None:
    return None if value in (None, "") else str(value)


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
