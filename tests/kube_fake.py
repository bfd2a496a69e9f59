"""A fake Kubernetes API server for the STANDBY/LIVE switch and the DR playbooks: the few
endpoints they call, over real HTTP, with real patch semantics. Every request is recorded
(method, path, query, content type, body, Authorization) for the tests to assert, and every
object is validated against the official Kubernetes OpenAPI schema (kubernetes-validate,
strict) after each change, so a patch that would produce an invalid object fails the test.

A restart (a change of the pod template) rolls out after ``rollout_polls`` reads of the
deployment: new pods carrying the template's annotations replace the old ones. With
``rollout_polls=None`` it never finishes.
"""

from __future__ import annotations

import copy
import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import kubernetes_validate

K8S_VERSION = "1.33.0"
NS = "researchflow-production"


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, list[str]]
    content_type: str | None
    body: Any
    authorization: str | None


def validate(obj: dict[str, Any]) -> None:
    kubernetes_validate.validate(obj, K8S_VERSION, strict=True)


def configmap(data: dict[str, str]) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "researchflow-config", "namespace": NS},
        "data": dict(data),
    }


def deployment(
    name: str = "orchestrator", replicas: int = 2, reads: str = "env-from"
) -> dict[str, Any]:
    container: dict[str, Any] = {"name": name, "image": "ghcr.io/researchflow/orchestrator:1.0"}
    if reads == "env-from":
        container["envFrom"] = [{"configMapRef": {"name": "researchflow-config"}}]
    elif reads in ("required-key", "optional-key"):
        ref: dict[str, Any] = {"name": "researchflow-config", "key": "ROS_MODE"}
        if reads == "optional-key":
            ref["optional"] = True
        container["env"] = [{"name": "ROS_MODE", "valueFrom": {"configMapKeyRef": ref}}]
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": NS, "generation": 1},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [container]},
            },
        },
        "status": {
            "observedGeneration": 1,
            "replicas": replicas,
            "updatedReplicas": replicas,
            "readyReplicas": replicas,
            "availableReplicas": replicas,
        },
    }


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    out = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        else:
            out[key] = merge_patch(out.get(key), value)
    return out


class PatchError(Exception):
    pass


def json_patch(target: dict[str, Any], ops: list[dict[str, Any]]) -> dict[str, Any]:
    """RFC 6902, the operations the playbooks use (remove, add, replace)."""
    out = copy.deepcopy(target)
    for op in ops:
        parts = [p.replace("~1", "/").replace("~0", "~") for p in op["path"].split("/")[1:]]
        parent = out
        for p in parts[:-1]:
            if p not in parent:
                raise PatchError(f"path {op['path']} not found")
            parent = parent[p]
        last = parts[-1]
        if op["op"] == "remove":
            if last not in parent:
                raise PatchError(f"unable to remove nonexistent key: {last}")
            del parent[last]
        elif op["op"] in ("add", "replace"):
            if op["op"] == "replace" and last not in parent:
                raise PatchError(f"replace of missing key {last}")
            parent[last] = op["value"]
        else:
            raise PatchError(f"unsupported op {op['op']}")
    return out


@dataclass
class FakeKube:
    token: str = "fake-token-7f3c9e1d"
    rollout_polls: int | None = 2
    configmaps: dict[str, dict[str, Any]] = field(default_factory=dict)
    deployments: dict[str, dict[str, Any]] = field(default_factory=dict)
    pods: dict[str, dict[str, Any]] = field(default_factory=dict)
    secrets: dict[str, dict[str, Any]] = field(default_factory=dict)
    requests: list[Request] = field(default_factory=list)
    _polls: dict[str, int] = field(default_factory=dict)
    _server: ThreadingHTTPServer | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def add_configmap(self, data: dict[str, str]) -> None:
        cm = configmap(data)
        validate(cm)
        self.configmaps[cm["metadata"]["name"]] = cm

    def add_secret(self, name: str, data: dict[str, str], version: str = "1") -> None:
        """``data`` in clear; stored base64-encoded, as the API does."""
        import base64

        secret = {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": name, "namespace": NS, "resourceVersion": version},
            "type": "Opaque",
            "data": {k: base64.b64encode(v.encode()).decode() for k, v in data.items()},
        }
        validate(secret)
        self.secrets[name] = secret

    def add_deployment(self, dep: dict[str, Any]) -> None:
        validate(dep)
        self.deployments[dep["metadata"]["name"]] = dep
        self._make_pods(dep)

    def _make_pods(self, dep: dict[str, Any]) -> None:
        name = dep["metadata"]["name"]
        gen = dep["metadata"]["generation"]
        for key in [k for k, p in self.pods.items() if p["metadata"]["labels"]["app"] == name]:
            del self.pods[key]
        template = dep["spec"]["template"]
        for i in range(dep["spec"]["replicas"]):
            pod = {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {
                    "name": f"{name}-{gen}-{i}",
                    "namespace": NS,
                    "labels": dict(template["metadata"]["labels"]),
                    "annotations": dict(template["metadata"].get("annotations", {})),
                },
                "spec": copy.deepcopy(template["spec"]),
                "status": {
                    "phase": "Running",
                    "conditions": [{"type": "Ready", "status": "True"}],
                },
            }
            validate(pod)
            self.pods[pod["metadata"]["name"]] = pod

    # -- serving ----------------------------------------------------------------------------

    def start(self) -> FakeKube:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                fake._handle(self, "GET")

            def do_PATCH(self) -> None:
                fake._handle(self, "PATCH")

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    @property
    def url(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def kubeconfig(self, folder: Path) -> Path:
        path = folder / "kubeconfig"
        doc = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "fake", "cluster": {"server": self.url}}],
            "users": [{"name": "ops", "user": {"token": self.token}}],
            "contexts": [{"name": "fake", "context": {"cluster": "fake", "user": "ops"}}],
            "current-context": "fake",
        }
        path.write_text(json.dumps(doc))
        path.chmod(0o600)
        return path

    def calls(self) -> list[tuple[str, str]]:
        return [(r.method, r.path) for r in self.requests]

    def _handle(self, h: BaseHTTPRequestHandler, method: str) -> None:
        parts = urlsplit(h.path)
        length = int(h.headers.get("Content-Length") or 0)
        raw = h.rfile.read(length) if length else b""
        body = json.loads(raw) if raw else None
        with self._lock:
            self.requests.append(
                Request(
                    method,
                    parts.path,
                    parse_qs(parts.query),
                    h.headers.get("Content-Type"),
                    body,
                    h.headers.get("Authorization"),
                )
            )
            if h.headers.get("Authorization") != f"Bearer {self.token}":
                return self._send(h, 401, _status(401, "Unauthorized"))
            try:
                code, doc = self._route(method, parts.path, parse_qs(parts.query), h, body)
            except PatchError as exc:
                code, doc = 422, _status(422, str(exc))
        self._send(h, code, doc)

    def _route(
        self, method: str, path: str, query: dict[str, list[str]], h: Any, body: Any
    ) -> tuple[int, dict[str, Any]]:
        seg = path.strip("/").split("/")
        ctype = h.headers.get("Content-Type")
        for kind, store in (("configmaps", self.configmaps), ("secrets", self.secrets)):
            if seg == ["api", "v1", "namespaces", NS, kind] and method == "GET":
                list_kind = "ConfigMapList" if kind == "configmaps" else "SecretList"
                items = list(store.values())
                return 200, {"apiVersion": "v1", "kind": list_kind, "metadata": {}, "items": items}
        if seg[:3] == ["api", "v1", "namespaces"] and seg[4:5] == ["configmaps"]:
            cm = self.configmaps.get(seg[5])
            if cm is None or seg[3] != NS:
                return 404, _status(404, "NotFound")
            if method == "PATCH":
                if ctype == "application/merge-patch+json":
                    new = merge_patch(cm, body)
                elif ctype == "application/json-patch+json":
                    new = json_patch(cm, body)
                else:
                    return 415, _status(415, f"unsupported patch type {ctype}")
                validate(new)
                self.configmaps[seg[5]] = cm = new
            return 200, cm
        if seg[:4] == ["apis", "apps", "v1", "namespaces"] and seg[5:6] == ["deployments"]:
            dep = self.deployments.get(seg[6])
            if dep is None or seg[4] != NS:
                return 404, _status(404, "NotFound")
            if method == "PATCH":
                if ctype != "application/strategic-merge-patch+json":
                    return 415, _status(415, f"unsupported patch type {ctype}")
                new = merge_patch(dep, body)  # our bodies: maps only, where both agree
                if new["spec"]["template"] != dep["spec"]["template"]:
                    new["metadata"]["generation"] += 1
                    self._polls[seg[6]] = 0
                validate(new)
                self.deployments[seg[6]] = dep = new
            elif dep["status"]["observedGeneration"] < dep["metadata"]["generation"]:
                self._polls[seg[6]] = self._polls.get(seg[6], 0) + 1
                if self.rollout_polls is not None and self._polls[seg[6]] > self.rollout_polls:
                    self._make_pods(dep)
                    dep["status"]["observedGeneration"] = dep["metadata"]["generation"]
                else:
                    dep = copy.deepcopy(dep)
                    dep["status"]["updatedReplicas"] = 1
            return 200, dep
        if seg == ["api", "v1", "namespaces", NS, "pods"] and method == "GET":
            selector = query.get("labelSelector", [""])[0]
            want = dict(kv.split("=", 1) for kv in selector.split(",") if kv)
            items = [
                p
                for p in self.pods.values()
                if all(p["metadata"]["labels"].get(k) == v for k, v in want.items())
            ]
            return 200, {"apiVersion": "v1", "kind": "PodList", "metadata": {}, "items": items}
        return 404, _status(404, "NotFound")

    @staticmethod
    def _send(h: BaseHTTPRequestHandler, code: int, doc: dict[str, Any]) -> None:
        data = json.dumps(doc).encode()
        h.send_response(code)
        h.send_header("Content-Type", "application/json")
        h.send_header("Content-Length", str(len(data)))
        h.end_headers()
        h.wfile.write(data)


def _status(code: int, message: str) -> dict[str, Any]:
    return {
        "kind": "Status",
        "apiVersion": "v1",
        "status": "Failure",
        "message": message,
        "code": code,
    }
