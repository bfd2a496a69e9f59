"""Build deploy/grafana/rfbackup.json with grafana-foundation-sdk (Grafana's own builders).

    .venv/bin/python deploy/grafana/build_dashboard.py      # rewrites rfbackup.json

The JSON is committed; tests/test_metrics_dashboard checks it is what this script builds,
and that every query names a metric rfbackup exports.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from grafana_foundation_sdk.builders import dashboard, prometheus, stat, timeseries
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models.dashboard import DataSourceRef, Threshold, ThresholdsMode

OUT = Path(__file__).with_name("rfbackup.json")
DS = DataSourceRef(type_val="prometheus", uid="${datasource}")
SEL = 'environment=~"$environment", component=~"$component"'
BY = "component, environment"


def query(expr: str, legend: str = "{{component}} ({{environment}})") -> prometheus.Dataquery:
    return prometheus.Dataquery().expr(expr).legend_format(legend).datasource(DS)


def series(title: str, unit: str, *targets: prometheus.Dataquery, w: int = 12) -> Any:
    panel = timeseries.Panel().title(title).unit(unit).datasource(DS).height(8).span(w)
    for t in targets:
        panel = panel.with_target(t)
    return panel


def build() -> dict[str, Any]:
    d = (
        dashboard.Dashboard("rfbackup: backups and recovery")
        .uid("rfbackup")
        .tags(["backups", "rfbackup"])
        .refresh("1m")
        .time("now-7d", "now")
        .timezone("utc")
        .with_variable(dashboard.DatasourceVariable("datasource").type("prometheus"))
        .with_variable(
            dashboard.QueryVariable("environment")
            .datasource(DS)
            .query("label_values(backup_last_attempt_timestamp_seconds, environment)")
            .include_all(True)
            .multi(True)
        )
        .with_variable(
            dashboard.QueryVariable("component")
            .datasource(DS)
            .query("label_values(backup_last_attempt_timestamp_seconds, component)")
            .include_all(True)
            .multi(True)
        )
        .with_row(dashboard.Row("Freshness"))
        .with_panel(
            stat.Panel()
            .title("Age of the last successful backup")
            .description("NoRecentBackup fires past 2 days (postgres), 8 days (postgres-base).")
            .unit("s")
            .datasource(DS)
            .height(6)
            .span(24)
            .with_target(
                query(
                    f"time() - max by ({BY}) "
                    f'(backup_last_success_timestamp_seconds{{operation="backup", {SEL}}})'
                ).instant()
            )
            .thresholds(
                dashboard.ThresholdsConfig()
                .mode(ThresholdsMode.ABSOLUTE)
                .steps(
                    [
                        Threshold(None, "green"),
                        Threshold(86400, "yellow"),
                        Threshold(172800, "red"),
                    ]
                )
            )
        )
        .with_row(dashboard.Row("Runs"))
        .with_panel(
            series(
                "Duration of the last run",
                "s",
                query(f'max by ({BY}) (backup_last_duration_seconds{{operation="backup", {SEL}}})'),
            )
        )
        .with_panel(
            series(
                "Size of the last backup",
                "bytes",
                query(
                    f'max by ({BY}) (backup_last_size_bytes{{kind="stored", {SEL}}})',
                    "stored {{component}} ({{environment}})",
                ),
                query(
                    f'max by ({BY}) (backup_last_size_bytes{{kind="raw", {SEL}}})',
                    "raw {{component}} ({{environment}})",
                ),
            )
        )
        .with_panel(
            series(
                "Failed runs per day",
                "short",
                query(
                    f"sum by ({BY}, operation, error_class) "
                    f"(increase(backup_failures_total{{{SEL}}}[1d]))",
                    "{{operation}} {{component}} {{error_class}} ({{environment}})",
                ),
                w=24,
            )
        )
        .with_row(dashboard.Row("WAL archive and replica"))
        .with_panel(
            series(
                "WAL: segments waiting, and age of the last archived one",
                "short",
                query(
                    'max by (environment) (wal_archive_lag_segments{environment=~"$environment"})',
                    "waiting ({{environment}})",
                ),
                query(
                    "time() - max by (environment) "
                    '(wal_archive_last_segment_timestamp_seconds{environment=~"$environment"})',
                    "seconds since last segment ({{environment}})",
                ),
            )
        )
        .with_panel(
            series(
                "Replica drift: backups missing on the replica",
                "short",
                query(f"max by ({BY}) (replica_missing_objects{{{SEL}}})"),
            )
        )
        .with_row(dashboard.Row("Restore drills"))
        .with_panel(
            series(
                "Age of the last verified restore drill",
                "s",
                query(
                    "time() - max by (environment) "
                    '(backup_restore_verified_timestamp_seconds{environment=~"$environment"})',
                    "{{environment}}",
                ),
                w=8,
            )
        )
        .with_panel(
            series(
                "Drill RTO: restore time per component",
                "s",
                query(f"max by ({BY}) (backup_drill_rto_seconds{{{SEL}}})"),
                w=8,
            )
        )
        .with_panel(
            series(
                "Drill RPO: age of the newest restorable point",
                "s",
                query(f"max by ({BY}) (backup_drill_rpo_seconds{{{SEL}}})"),
                w=8,
            )
        )
    )
    doc: dict[str, Any] = json.loads(json.dumps(d.build(), cls=JSONEncoder))
    return doc


def render() -> str:
    return json.dumps(build(), indent=2, sort_keys=True) + "\n"


if __name__ == "__main__":
    OUT.write_text(render())
    print(f"wrote {OUT}", file=sys.stderr)
