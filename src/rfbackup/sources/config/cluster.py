"""`backup config --with-cluster`: the live cluster's ConfigMaps, and its Secrets encrypted
with age, as one commit on a dedicated branch of the configuration repository
(``rfbackup/cluster-state``), made with git plumbing: the working tree, the index and the
checked-out branch are never touched. A commit is added only when the content changed.
Secrets are never written in clear: without age recipients, --with-cluster refuses."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rfbackup.errors import ConfigError, ModeSwitchError, SourceError

if TYPE_CHECKING:
    from rfbackup.config import Settings

BRANCH = "refs/heads/rfbackup/cluster-state"
DROP = ("managedFields", "resourceVersion", "uid", "creationTimestamp", "generation")


def _git(repo: Path, *args: str, stdin: bytes | None = None) -> str:
    proc = subprocess.run(["git", "-C", str(repo), *args], input=stdin, capture_output=True)
    if proc.returncode != 0:
        raise SourceError(f"git {args[0]} failed: {proc.stderr.decode(errors='replace')[:200]}")
    return proc.stdout.decode().strip()


def _clean(obj: dict[str, Any], kind: str) -> dict[str, Any]:
    meta = {k: v for k, v in (obj.get("metadata") or {}).items() if k not in DROP and v}
    doc = {"apiVersion": "v1", "kind": kind, "metadata": meta}
    for key in ("data", "binaryData", "stringData", "type", "immutable"):
        if obj.get(key) is not None:
            doc[key] = obj[key]
    return doc


def snapshot(settings: Settings, api: Any = None) -> tuple[dict[str, bytes], str]:
    """path -> content (configmaps/NAME.json in clear, secrets/NAME.json.age encrypted), and
    the Secrets' resourceVersions: what tells a changed Secret (age output differs on every
    run, and a hash of a secret would be a clue to it)."""
    from kubernetes import client

    from rfbackup.dr.kube import api_client
    from rfbackup.encryption import parse_recipients

    recipients = parse_recipients(settings.encryption.recipient_keys())
    if not recipients:
        raise ConfigError(
            "--with-cluster stores Secrets, encrypted with age: set "
            "RFBACKUP_ENCRYPTION__RECIPIENTS (they are never written in clear)"
        )
    import pyrage

    core = client.CoreV1Api(api if api is not None else api_client(settings.mode))
    ns = settings.mode.namespace
    raw = core.api_client  # plain JSON dicts, as the API sent them
    try:
        cms = raw.sanitize_for_serialization(core.list_namespaced_config_map(ns).items)
        secrets = raw.sanitize_for_serialization(core.list_namespaced_secret(ns).items)
    except Exception as exc:
        raise ModeSwitchError(f"cannot list ConfigMaps and Secrets in {ns}: {exc}") from None
    files: dict[str, bytes] = {}
    for cm in cms:
        body = json.dumps(_clean(cm, "ConfigMap"), indent=2, sort_keys=True) + "\n"
        files[f"configmaps/{cm['metadata']['name']}.json"] = body.encode()
    versions = {}
    for s in secrets:
        name = s["metadata"]["name"]
        body = json.dumps(_clean(s, "Secret"), indent=2, sort_keys=True) + "\n"
        files[f"secrets/{name}.json.age"] = pyrage.encrypt(body.encode(), recipients)
        versions[name] = str(s["metadata"].get("resourceVersion", ""))
    return files, json.dumps(versions, indent=2, sort_keys=True) + "\n"


def commit(repo: Path, ns: str, files: dict[str, bytes], secret_versions: str) -> str | None:
    """A commit of ``files`` on BRANCH; None when nothing changed since its tip (Secrets
    compared by their resourceVersions)."""
    folders: dict[str, list[str]] = {}
    for path, data in sorted(files.items()):
        folder, _, name = path.partition("/")
        oid = _git(repo, "hash-object", "-w", "--stdin", stdin=data)
        folders.setdefault(folder, []).append(f"100644 blob {oid}\t{name}")
    fp = _git(repo, "hash-object", "-w", "--stdin", stdin=secret_versions.encode())
    entries = [f"100644 blob {fp}\tsecret-versions.json"]
    for folder, lines in folders.items():
        sub = _git(repo, "mktree", stdin=("\n".join(lines) + "\n").encode())
        entries.append(f"040000 tree {sub}\t{folder}")
    tree = _git(
        repo,
        "mktree",
        stdin=("\n".join(sorted(entries, key=lambda e: e.split("\t")[1])) + "\n").encode(),
    )
    parent = subprocess.run(
        ["git", "-C", str(repo), "rev-parse", "-q", "--verify", BRANCH],
        capture_output=True,
        text=True,
    ).stdout.strip()
    if parent:
        old = {
            ln.split("\t")[1]: ln.split()[2]
            for ln in _git(repo, "ls-tree", "-r", parent).splitlines()
        }
        new_plain = {
            p: _git(repo, "hash-object", "--stdin", stdin=d)
            for p, d in files.items()
            if not p.endswith(".age")
        }
        same_plain = {
            p: o for p, o in old.items() if not p.endswith(".age") and p != "secret-versions.json"
        } == new_plain
        same_secrets = old.get("secret-versions.json") == fp and sorted(
            p for p in old if p.endswith(".age")
        ) == sorted(p for p in files if p.endswith(".age"))
        if same_plain and same_secrets:
            return None
    args = ["commit-tree", tree, "-m", f"rfbackup: cluster state of namespace {ns}"]
    if parent:
        args[2:2] = ["-p", parent]
    env_args = ["-c", "user.name=rfbackup", "-c", "user.email=rfbackup@localhost"]
    oid = _git(repo, *env_args, *args)
    _git(repo, "update-ref", BRANCH, oid, *([parent] if parent else []))
    return oid
