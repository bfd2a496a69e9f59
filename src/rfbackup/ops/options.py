"""The operations part of the configuration: metrics delivery, schedules, freshness
thresholds and Kubernetes rendering. Models only: config.py reads them (``[metrics]``,
``[schedule]``, ``[freshness]``, ``[kubernetes]`` in rfbackup.toml, or RFBACKUP_METRICS__...)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator


class MetricsOptions(BaseModel):
    """Where run metrics go: a node_exporter textfile folder, a Pushgateway, both, or nowhere."""

    textfile_dir: Path | None = None  # RFBACKUP_METRICS__TEXTFILE_DIR (node_exporter's folder)
    pushgateway_url: str | None = None  # RFBACKUP_METRICS__PUSHGATEWAY_URL=http://host:9091
    pushgateway_job: str = "rfbackup"
    timeout_seconds: float = Field(default=5.0, gt=0, le=60)

    @property
    def enabled(self) -> bool:
        return self.textfile_dir is not None or bool(self.pushgateway_url)


class ScheduleOptions(BaseModel):
    """When jobs run (cron syntax, UTC): crontab lines, Kubernetes CronJobs and status."""

    postgres: str = "0 2 * * *"  # the runbook: daily at 02:00
    postgres_base: str = "0 1 * * 0"  # weekly base backup, Sunday 01:00
    retention: str = "0 3 * * 0"  # the runbook's crontab (its CronJob says Sunday 04:00)
    pitr_prune: str = "30 3 * * 0"
    redis: str = "0 * * * *"  # the runbook: hourly RDB snapshots
    wal_verify: str = "0 5 * * *"
    drill: str = "0 6 1 * *"  # the runbook's monthly backup test: the 1st, 06:00
    artifacts: str = "30 1 * * *"  # artifact volume snapshots, daily
    artifacts_prune: str = "0 6 * * 0"  # on the host that holds the age identity

    @field_validator("*")
    @classmethod
    def _cron(cls, value: str) -> str:
        from croniter import croniter

        if not croniter.is_valid(value) or len(value.split()) != 5:
            raise ValueError(f"not a 5-field cron schedule: {value!r}")
        return value


class FreshnessOptions(BaseModel):
    """How old the newest good backup of a component may be before status and alerts
    call it stale, in hours."""

    postgres_hours: float = Field(default=48, gt=0)  # the runbook's NoRecentBackup: 2 days
    postgres_base_hours: float = Field(default=8 * 24, gt=0)  # weekly, plus a day of slack
    wal_hours: float = Field(default=1, gt=0)  # archive_timeout is 5 minutes
    redis_hours: float = Field(default=3, gt=0)  # hourly, as NoRecentRedisBackup alerts
    artifacts_hours: float = Field(default=48, gt=0)  # daily, plus a day of slack


class KubernetesOptions(BaseModel):
    """What `rfbackup k8s render` fills into the manifests."""

    namespace: str = "researchflow"
    image: str = "ghcr.io/researchflow/rfbackup:0.1.0"  # pinned, never :latest
    pghost: str = "postgres"
    pgdatabase: str = "researchflow"
    manifests_dir: Path | None = None  # default: deploy/kubernetes of this checkout


class ModeOptions(BaseModel):
    """`rfbackup mode standby|live`: where ROS_MODE lives and what to restart
    (RFBACKUP_MODE__NAMESPACE=..., or [mode] in rfbackup.toml)."""

    model_config = ConfigDict(extra="forbid")  # a typo is an error, not a default

    platform: Literal["kubernetes", "compose"] = "kubernetes"
    namespace: str = "researchflow-production"  # the runbook's
    configmap: str = "researchflow-config"
    key: str = "ROS_MODE"
    deployments: list[str] = ["orchestrator"]
    rollout_timeout_seconds: float = Field(default=300, gt=0)
    # Kubernetes access: the in-cluster service account, else this kubeconfig (default
    # ~/.kube/config or $KUBECONFIG) and context. Never on a command line.
    kubeconfig: Path | None = None
    context: str | None = None
    # Docker Compose: the env file holding ROS_MODE, and the project to restart.
    compose_env_file: Path = Path(".env")
    compose_file: Path | None = None
    compose_project_dir: Path | None = None
    compose_services: list[str] = ["orchestrator"]


class DrillOptions(BaseModel):
    """`rfbackup drill` ([drill] in rfbackup.toml, RFBACKUP_DRILL__...)."""

    model_config = ConfigDict(extra="forbid")  # a typo is an error, not a default

    # A separate server for the scratch database (postgresql://user:pass@host:port/db; any
    # database there to connect to): then nothing, not even a scratch database, is created
    # on the production server. Default: the production server, in rfbackup_drill_ID.
    database_url: SecretStr | None = None
