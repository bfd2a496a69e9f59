"""The container image, checked without a Docker engine: its Debian packages come from the same
list bootstrap installs, it runs rfbackup as the non-root user the manifests expect."""

from __future__ import annotations

import re
import shutil
import subprocess
import tomllib
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
DOCKERFILE = (ROOT / "Dockerfile").read_text()
BOOTSTRAP = (ROOT / "scripts" / "bootstrap.sh").read_text()


def packages(target: str) -> list[str]:
    done = subprocess.run(
        ["sh", str(ROOT / "scripts" / "packages.sh"), target],
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout.split()


def instructions(name: str) -> list[str]:
    """The arguments of every Dockerfile instruction ``name`` (continuation lines joined)."""
    joined = re.sub(r"\\\n", " ", DOCKERFILE)
    return [
        line.split(None, 1)[1].strip()
        for line in joined.splitlines()
        if line.split(None, 1)[:1] == [name]
    ]


def test_one_package_list_for_image_and_bootstrap() -> None:
    image, machine = set(packages("image")), set(packages("machine"))
    assert {
        "postgresql-client-15",
        "postgresql-client-16",
        "postgresql-client-17",
        "redis-tools",
        "age",
    } == image
    assert {"prometheus", "prometheus-pushgateway", "prometheus-alertmanager"} <= machine
    shared = image & machine
    assert {"age", "redis-tools", "postgresql-client-15"} == shared
    # both read that list: the Dockerfile installs `packages.sh image` ...
    copies = instructions("COPY")
    assert any("scripts/packages.txt" in c and "scripts/packages.sh" in c for c in copies)
    runs = " ".join(instructions("RUN"))
    assert re.search(r"apt-get install [^;]*\$\(sh /tmp/packages/packages\.sh image\)", runs)
    # ... and bootstrap installs `packages.sh machine`, and nothing named by hand
    assert "$(scripts/packages.sh machine)" in BOOTSTRAP
    installs = re.findall(r"apt-get install[^\n]*", re.sub(r"\\\n\s*", " ", BOOTSTRAP))
    assert installs and all('"${need_apt[@]}"' in i for i in installs)


@pytest.mark.skipif(shutil.which("dpkg-query") is None, reason="not Debian")
def test_this_machine_has_what_bootstrap_installs() -> None:
    missing = []
    for pkg in packages("machine"):
        status = subprocess.run(
            ["dpkg-query", "-W", "-f=${Status}", pkg], capture_output=True, text=True
        )
        if "ok installed" not in status.stdout:
            missing.append(pkg)
    assert missing == []
    # the package binaries the tests run
    for binary in ("promtool", "prometheus", "prometheus-pushgateway", "prometheus-alertmanager"):
        assert shutil.which(binary), binary


def test_pgdg_repository_is_signed_and_pinned_to_the_release() -> None:
    runs = " ".join(instructions("RUN"))
    assert "signed-by=/usr/share/postgresql-common/pgdg/apt.postgresql.org.asc" in runs
    assert "bookworm-pgdg main" in runs
    bases = instructions("FROM")
    assert bases and all(":" in b.split()[0] and ":latest" not in b for b in bases)
    assert all(b.split()[0].endswith("bookworm") for b in bases)  # PGDG suite matches


def test_non_root_user_matches_the_manifests_and_entrypoint_is_rfbackup() -> None:
    (user,) = instructions("USER")
    uid, _, gid = user.partition(":")
    assert uid.isdigit() and int(uid) != 0 and gid.isdigit() and int(gid) != 0
    cron = yaml.safe_load(
        (ROOT / "deploy" / "kubernetes" / "base" / "cronjob-postgres-backup.yaml").read_text()
    )
    pod = cron["spec"]["jobTemplate"]["spec"]["template"]["spec"]["securityContext"]
    assert (pod["runAsUser"], pod["runAsGroup"]) == (int(uid), int(gid))
    assert instructions("ENTRYPOINT") == ['["rfbackup"]']
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts["rfbackup"] == "rfbackup.main:main"
    runs = " ".join(instructions("RUN"))
    assert "uv export --locked --no-dev" in runs  # the image gets exactly the locked versions
