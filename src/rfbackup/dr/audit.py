"""The append-only audit log of a DR playbook run, in the repository: one immutable object per
event (``dr-audit/PLAYBOOK/RUN_ID/SEQ-STEP-RESULT.json``: who, when, step, result), so
nothing can rewrite an earlier line and a crash loses at most the event being written.
Listing it is also how a rerun finds the steps already done."""

from __future__ import annotations

import getpass
import json
import os
import socket
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rfbackup.storage import Repository

PREFIX = "dr-audit/"


def who() -> str:
    user = os.environ.get("SUDO_USER") or getpass.getuser()
    return f"{user}@{socket.gethostname()}"


@dataclass
class AuditLog:
    repo: Repository
    playbook: str
    run_id: str
    subject: dict[str, str]  # environment, database...

    @property
    def prefix(self) -> str:
        return f"{PREFIX}{self.playbook}/{self.run_id}/"

    def events(self) -> list[dict[str, Any]]:
        from rfbackup.storage import read_bytes

        return [json.loads(read_bytes(self.repo, o.key)) for o in self.repo.list(self.prefix)]

    def record(self, step: str, result: str, detail: str = "", **facts: Any) -> None:
        seq = sum(1 for _ in self.repo.list(self.prefix))
        event = {
            "playbook": self.playbook,
            "run_id": self.run_id,
            "seq": seq,
            "who": who(),
            "when": datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z"),
            **self.subject,
            "step": step,
            "result": result,
            "detail": detail,
            "facts": facts,
        }
        data = (json.dumps(event, sort_keys=True) + "\n").encode()
        self.repo.put(f"{self.prefix}{seq:04d}-{step}-{result}.json", data)


def runs(repo: Repository, playbook: str) -> list[str]:
    """Run ids of ``playbook``, oldest first."""
    ids = {
        o.key[len(PREFIX) + len(playbook) + 1 :].split("/", 1)[0]
        for o in repo.list(f"{PREFIX}{playbook}/")
    }
    return sorted(ids)
