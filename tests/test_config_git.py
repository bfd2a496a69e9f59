"""Configuration kept in git: a bundle on change (nothing when no ref moved), stored under
config/ with a manifest, never pruned, restored by clone after `git bundle verify`; a bundle
changed in the repository is refused."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

RFBACKUP = [sys.executable, "-m", "rfbackup"]


def run(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return run_env(cwd, {}, *args)


def run_env(cwd: Path, extra: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PG", "RFBACKUP_"))}
    env["RFBACKUP_CONFIG"] = str(cwd / "rfbackup.toml")
    return subprocess.run(
        [*RFBACKUP, *args], cwd=cwd, env={**env, **extra}, capture_output=True, text=True
    )


def git(path: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(path), "-c", "user.name=ops", "-c", "user.email=ops@example", *args],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()


def config_repo(tmp: Path) -> Path:
    repo = tmp / "researchflow"
    (repo / "infrastructure").mkdir(parents=True)
    git(repo, "init", "-q", "-b", "main")
    (repo / "infrastructure" / "values.yaml").write_text("replicas: 2\n")
    git(repo, "add", ".")
    git(repo, "commit", "-q", "-m", "first")
    git(repo, "tag", "v1")
    return repo


def test_bundle_on_change_and_clone_back(tmp_path: Path) -> None:
    repo = config_repo(tmp_path)

    first = run(tmp_path, "backup", "config", "--git-repo", str(repo), "--json")
    assert first.returncode == 0, first.stderr
    doc = json.loads(first.stdout)
    assert doc["changed"] is True and doc["name"].startswith("config/researchflow_")
    # nothing changed: nothing written
    again = run(tmp_path, "backup", "config", "--git-repo", str(repo), "--json")
    assert again.returncode == 0 and json.loads(again.stdout)["changed"] is False
    assert len(list((tmp_path / "backups" / "config").glob("*.bundle.zst"))) == 1
    # a new commit on a branch: a new bundle
    git(repo, "checkout", "-q", "-b", "hotfix")
    (repo / "infrastructure" / "values.yaml").write_text("replicas: 3\n")
    git(repo, "commit", "-q", "-am", "scale")
    third = run(tmp_path, "backup", "config", "--git-repo", str(repo), "--json")
    assert json.loads(third.stdout)["changed"] is True
    name = json.loads(third.stdout)["name"]

    dest = tmp_path / "restored"
    bare = name.rpartition("/")[2]  # a bare name is looked up in the repository
    r = run(tmp_path, "restore", "config", bare, str(dest), "--json")

    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["refs"] == 3  # main, hotfix, v1
    for branch in ("main", "hotfix"):
        assert git(dest, "rev-parse", f"refs/heads/{branch}") == git(repo, "rev-parse", branch)
    assert git(dest, "rev-parse", "v1") == git(repo, "rev-parse", "v1")
    # the listing shows them; prune never deletes them
    listed = json.loads(run(tmp_path, "list", "--json").stdout)
    assert sum(e["component"] == "config" for e in listed) == 2
    pruned = run(tmp_path, "prune", "--keep-days", "0", "--keep-min", "0", "--json")
    assert pruned.returncode == 0, pruned.stderr
    assert len(list((tmp_path / "backups" / "config").glob("*.bundle.zst"))) == 2


def test_a_changed_bundle_is_refused(tmp_path: Path) -> None:
    repo = config_repo(tmp_path)
    name = json.loads(run(tmp_path, "backup", "config", "--git-repo", str(repo), "--json").stdout)[
        "name"
    ]
    path = tmp_path / "backups" / name
    data = bytearray(path.read_bytes())
    data[-30] ^= 0xFF
    path.write_bytes(bytes(data))

    r = run(tmp_path, "restore", "config", str(path), str(tmp_path / "dest"))

    assert r.returncode == 6 and "corrupted" in r.stderr
    assert not (tmp_path / "dest").exists()


def test_not_a_git_repository_is_one_line(tmp_path: Path) -> None:
    r = run(tmp_path, "backup", "config", "--git-repo", str(tmp_path))
    assert r.returncode == 3 and "is not a git repository" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1


def test_the_drill_checks_the_newest_bundle(tmp_path: Path) -> None:
    repo = config_repo(tmp_path)
    # A linked worktree: `git bundle --all` then also lists its HEAD (found on this machine)
    git(repo, "worktree", "add", "-q", "-b", "side", str(tmp_path / "side-tree"))
    assert run(tmp_path, "backup", "config", "--git-repo", str(repo)).returncode == 0

    r = run(tmp_path, "drill", "--component", "config", "--json")

    assert r.returncode == 0, r.stderr
    (config,) = json.loads(r.stdout)["components"]
    assert config["status"] == "passed" and config["rto_seconds"] > 0
    assert not [p for p in os.listdir("/tmp") if p.startswith("rfbackup-drill-config-")]


def test_with_cluster_commits_configmaps_and_encrypted_secrets(tmp_path: Path) -> None:
    from kube_fake import FakeKube

    repo = config_repo(tmp_path)
    key = tmp_path / "age.key"
    subprocess.run(["age-keygen", "-o", str(key)], check=True, capture_output=True)
    public = subprocess.run(
        ["age-keygen", "-y", str(key)], check=True, capture_output=True, text=True
    ).stdout.strip()
    kube = FakeKube().start()
    try:
        kube.add_configmap({"ROS_MODE": "STANDBY", "LOG_LEVEL": "info"})
        kube.add_secret("db", {"password": "s3cret-Pa55"})
        env = {
            "RFBACKUP_MODE__KUBECONFIG": str(kube.kubeconfig(tmp_path)),
            "RFBACKUP_ENCRYPTION__RECIPIENTS": public,
            "RFBACKUP_ENCRYPTION__IDENTITY_FILE": str(key),
        }
        head = git(repo, "rev-parse", "HEAD")

        def backup() -> dict[str, Any]:
            r = run_env(
                tmp_path,
                env,
                "backup",
                "config",
                "--git-repo",
                str(repo),
                "--with-cluster",
                "--json",
            )
            assert r.returncode == 0, r.stderr
            assert "s3cret-Pa55" not in r.stdout + r.stderr
            return dict(json.loads(r.stdout))

        assert backup()["changed"] is True
        branch = "rfbackup/cluster-state"
        files = git(repo, "ls-tree", "-r", "--name-only", branch).split()
        assert files == [
            "configmaps/researchflow-config.json",
            "secret-versions.json",
            "secrets/db.json.age",
        ]
        cm = json.loads(git(repo, "show", f"{branch}:configmaps/researchflow-config.json"))
        assert cm["data"] == {"ROS_MODE": "STANDBY", "LOG_LEVEL": "info"}
        sealed = subprocess.run(
            ["git", "-C", str(repo), "show", f"{branch}:secrets/db.json.age"],
            capture_output=True, check=True,
        ).stdout  # fmt: skip
        assert b"s3cret" not in sealed and b"czNjcmV0" not in sealed
        opened = subprocess.run(
            ["age", "-d", "-i", str(key)], input=sealed, capture_output=True, check=True
        ).stdout
        assert json.loads(opened)["data"] == {"password": "czNjcmV0LVBhNTU="}
        # The operator's checkout is untouched; nothing changed: no commit, no bundle.
        assert git(repo, "rev-parse", "HEAD") == head and git(repo, "status", "--porcelain") == ""
        assert backup()["changed"] is False
        kube.add_secret("db", {"password": "rotated"}, version="2")
        assert backup()["changed"] is True
        assert git(repo, "rev-list", "--count", branch) == "2"
    finally:
        kube.stop()
