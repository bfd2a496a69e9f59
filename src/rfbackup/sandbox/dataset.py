"""A ResearchFlow-like sample database: projects, runs, events with JSON payloads, notes.

The data is made to compress like real application data (about 3-5:1 with gzip), not like
pgbench filler (100:1), so compression costs what it costs in production. Generation is
deterministic for a given seed.
"""

from __future__ import annotations

import json
import random
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg

SCHEMA = """
CREATE TABLE projects (
    id uuid PRIMARY KEY,
    name text NOT NULL,
    owner text NOT NULL,
    created_at timestamptz NOT NULL,
    settings jsonb NOT NULL DEFAULT '{}'
);
CREATE TABLE runs (
    id bigint PRIMARY KEY,
    uuid uuid NOT NULL UNIQUE,
    project_id uuid NOT NULL REFERENCES projects(id),
    status text NOT NULL CHECK (status IN ('queued','running','succeeded','failed','cancelled')),
    started_at timestamptz NOT NULL,
    finished_at timestamptz,
    params jsonb NOT NULL,
    metrics jsonb
);
CREATE TABLE events (
    id bigint PRIMARY KEY,
    run_id bigint NOT NULL REFERENCES runs(id),
    ts timestamptz NOT NULL,
    kind text NOT NULL,
    payload jsonb NOT NULL
);
CREATE INDEX events_run_ts ON events (run_id, ts);
CREATE TABLE notes (
    id bigint PRIMARY KEY,
    run_id bigint NOT NULL REFERENCES runs(id),
    author text NOT NULL,
    body text NOT NULL,
    created_at timestamptz NOT NULL
);
CREATE INDEX notes_run ON notes (run_id);
CREATE TABLE artifacts (
    id uuid PRIMARY KEY,
    run_id bigint NOT NULL REFERENCES runs(id),
    path text NOT NULL,
    sha256 text NOT NULL,
    size_bytes bigint NOT NULL,
    created_at timestamptz NOT NULL
);
CREATE VIEW run_summary AS
    SELECT r.project_id, r.status, count(*) AS runs, max(r.started_at) AS last_started
    FROM runs r GROUP BY r.project_id, r.status;
"""

_WORDS = (
    "the of and model training run dataset loss accuracy epoch batch learning rate "
    "gradient checkpoint validation test split sample feature embedding layer attention "
    "transformer baseline experiment result observed improvement regression hypothesis "
    "protocol cohort participant survey analysis variance mean median outlier threshold "
    "significant p-value we noticed that after increasing the warmup steps convergence "
    "was faster but unstable reviewer asked for ablation on tokenizer vocabulary size "
    "memory usage grew beyond expected GPU node preempted resumed from last checkpoint "
    "data pipeline shuffled seed fixed config updated metrics dashboard shows plateau "
    "around step lab notebook entry instrument calibration temperature humidity pressure "
    "reading sensor drift corrected"
).split()
_KINDS = ("log", "metric", "checkpoint", "status", "warning", "artifact", "heartbeat")
_STATUSES = ("succeeded", "succeeded", "succeeded", "failed", "running", "cancelled", "queued")
_AUTHORS = [f"{n}@researchflow.example" for n in ("ada", "grace", "alan", "katherine", "linus")]
_EPOCH = datetime(2025, 1, 1, tzinfo=UTC)
NULL = "\\N"  # COPY text format

# Rough stored bytes per "unit" of generation, used to hit a size target.
_BYTES_PER_RUN = 17_500


def _sentence(rng: random.Random, n: int) -> str:
    return " ".join(rng.choices(_WORDS, k=n))


def create_schema(conn: psycopg.Connection[Any]) -> None:
    with conn.cursor() as cur:
        cur.execute(SCHEMA)
    conn.commit()


def populate(conn: psycopg.Connection[Any], target_bytes: int, seed: int = 7) -> dict[str, int]:
    """Fill the schema until roughly ``target_bytes`` of table data exist. Returns row counts."""
    rng = random.Random(seed)
    pool = [_sentence(rng, rng.randint(6, 18)) for _ in range(4000)]
    n_runs = max(4, target_bytes // _BYTES_PER_RUN)
    n_projects = max(2, n_runs // 200)
    projects = [uuid.UUID(int=rng.getrandbits(128), version=4) for _ in range(n_projects)]
    counts = {"projects": n_projects, "runs": 0, "events": 0, "notes": 0, "artifacts": 0}
    with conn.cursor() as cur:
        with cur.copy("COPY projects FROM STDIN") as cp:
            for i, pid in enumerate(projects):
                settings = {"visibility": rng.choice(["private", "team"]), "gpu_quota": i % 8}
                ts = _EPOCH + timedelta(days=i % 300)
                cp.write(
                    f"{pid}\tproject-{i} {rng.choice(pool)[:40]}\t{rng.choice(_AUTHORS)}\t"
                    f"{ts.isoformat()}\t{json.dumps(settings)}\n"
                )
        event_id = note_id = 0
        batch = 500
        for start in range(0, n_runs, batch):
            runs, events, notes, artifacts = [], [], [], []
            for run_id in range(start + 1, min(n_runs, start + batch) + 1):
                started = _EPOCH + timedelta(seconds=run_id * 97 + rng.randint(0, 90))
                status = rng.choice(_STATUSES)
                params = {
                    "lr": round(rng.uniform(1e-5, 1e-2), 6),
                    "batch_size": rng.choice([16, 32, 64, 128]),
                    "optimizer": rng.choice(["adam", "adamw", "sgd"]),
                    "seed": rng.randint(0, 2**31),
                    "tags": rng.sample(_WORDS, 3),
                }
                metrics = {"loss": round(rng.uniform(0.01, 3), 5), "acc": round(rng.random(), 5)}
                finished = started + timedelta(minutes=rng.randint(1, 600))
                finished_text = finished.isoformat() if status != "running" else NULL
                runs.append(
                    f"{run_id}\t{uuid.UUID(int=rng.getrandbits(128), version=4)}\t"
                    f"{rng.choice(projects)}\t{status}\t{started.isoformat()}\t"
                    f"{finished_text}\t"
                    f"{json.dumps(params)}\t{json.dumps(metrics)}\n"
                )
                for k in range(rng.randint(20, 60)):
                    event_id += 1
                    kind = rng.choice(_KINDS)
                    payload = {
                        "step": k * 50,
                        "message": rng.choice(pool),
                        "value": round(rng.gauss(0.5, 0.2), 6),
                        "host": f"gpu-node-{rng.randint(1, 64):02d}",
                    }
                    ts = started + timedelta(seconds=k * rng.randint(5, 60))
                    events.append(
                        f"{event_id}\t{run_id}\t{ts.isoformat()}\t{kind}\t{json.dumps(payload)}\n"
                    )
                for _ in range(rng.randint(1, 4)):
                    note_id += 1
                    body = " ".join(rng.choices(pool, k=rng.randint(3, 12)))
                    notes.append(
                        f"{note_id}\t{run_id}\t{rng.choice(_AUTHORS)}\t{body}\t"
                        f"{(started + timedelta(hours=2)).isoformat()}\n"
                    )
                for a in range(rng.randint(0, 3)):
                    artifacts.append(
                        f"{uuid.UUID(int=rng.getrandbits(128), version=4)}\t{run_id}\t"
                        f"s3://artifacts/{run_id}/{a}/{rng.choice(_WORDS)}.pt\t"
                        f"{rng.getrandbits(256):064x}\t{rng.randint(10**3, 10**10)}\t"
                        f"{finished.isoformat()}\n"
                    )
            for table, rows in (
                ("runs", runs),
                ("events", events),
                ("notes", notes),
                ("artifacts", artifacts),
            ):
                with cur.copy(f"COPY {table} FROM STDIN") as cp:
                    cp.write("".join(rows))
                counts[table] += len(rows)
            conn.commit()
    with conn.cursor() as cur:
        cur.execute("ANALYZE")
    conn.commit()
    return counts


def build(dsn: str, target_bytes: int, seed: int = 7) -> dict[str, int]:
    """Create the schema and fill it. ``dsn`` names an empty database."""
    with psycopg.connect(dsn) as conn:
        create_schema(conn)
        return populate(conn, target_bytes, seed)
