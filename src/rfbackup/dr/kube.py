"""ROS_MODE on Kubernetes, the way the runbook does it with kubectl, through the official
client:

    STANDBY: PATCH configmap, application/merge-patch+json:
             {"data": {"ROS_MODE": "STANDBY"}}
    LIVE:    PATCH configmap, application/json-patch+json:
             [{"op": "remove", "path": "/data/ROS_MODE"}]
    then, per deployment, what `kubectl rollout restart` sends (a strategic merge patch of
    the pod template's kubectl.kubernetes.io/restartedAt annotation), wait like
    `kubectl rollout status`, and check the new pods: running, ready, restarted by us, and
    reading the key from the ConfigMap.

Credentials come from the service account or the kubeconfig, never argv, and are not logged.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from rfbackup.errors import ModeSwitchError
from rfbackup.logs import log

if TYPE_CHECKING:
    from rfbackup.ops.options import ModeOptions

RESTARTED_AT = "kubectl.kubernetes.io/restartedAt"
MERGE = "application/merge-patch+json"
JSON_PATCH = "application/json-patch+json"
STRATEGIC = "application/strategic-merge-patch+json"


@dataclass
class Step:
    """One API call: what `--dry-run` prints, and what a run did."""

    what: str
    call: str  # METHOD path (content type)
    body: Any = None
    done: bool = False
    detail: str = ""

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def configmap_patch(opts: ModeOptions, mode: str) -> tuple[str, Any]:
    """The content type and body of the ConfigMap patch for ``mode``."""
    if mode == "STANDBY":
        return MERGE, {"data": {opts.key: "STANDBY"}}
    return JSON_PATCH, [{"op": "remove", "path": f"/data/{_pointer(opts.key)}"}]


def restart_patch(stamp: str) -> dict[str, Any]:
    return {"spec": {"template": {"metadata": {"annotations": {RESTARTED_AT: stamp}}}}}


def _pointer(key: str) -> str:
    return key.replace("~", "~0").replace("/", "~1")  # RFC 6901


def plan(opts: ModeOptions, mode: str, stamp: str) -> list[Step]:
    ns = opts.namespace
    ctype, body = configmap_patch(opts, mode)
    steps = [
        Step(
            f"set {opts.key}={mode}" if mode == "STANDBY" else f"remove {opts.key} (LIVE)",
            f"PATCH /api/v1/namespaces/{ns}/configmaps/{opts.configmap} ({ctype})",
            body,
        )
    ]
    for name in opts.deployments:
        steps.append(
            Step(
                f"restart deployment/{name}",
                f"PATCH /apis/apps/v1/namespaces/{ns}/deployments/{name} ({STRATEGIC})",
                restart_patch(stamp),
            )
        )
    for name in opts.deployments:
        steps.append(
            Step(
                f"wait for deployment/{name} to roll out "
                f"(at most {opts.rollout_timeout_seconds:g} s)",
                f"GET /apis/apps/v1/namespaces/{ns}/deployments/{name}",
            )
        )
        steps.append(
            Step(
                f"check the pods of deployment/{name} run with the new {opts.key}",
                f"GET /api/v1/namespaces/{ns}/pods?labelSelector=...",
            )
        )
    return steps


def api_client(opts: ModeOptions) -> Any:
    """An ApiClient: in-cluster service account first, else the kubeconfig."""
    from kubernetes import client, config
    from kubernetes.config.config_exception import ConfigException

    if opts.kubeconfig is None:
        try:
            configuration = client.Configuration()
            config.load_incluster_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
            return client.ApiClient(configuration)
        except ConfigException:
            pass
    try:
        return config.new_client_from_config(  # type: ignore[no-untyped-call]
            config_file=str(opts.kubeconfig) if opts.kubeconfig else None, context=opts.context
        )
    except (ConfigException, OSError) as exc:
        raise ModeSwitchError(f"cannot load the Kubernetes configuration: {exc}") from None


@dataclass
class Switch:
    opts: ModeOptions
    mode: str  # STANDBY or LIVE
    api: Any  # kubernetes.client.ApiClient
    sleep: Callable[[float], None] = time.sleep
    stamp: str = field(default_factory=lambda: datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"))

    def run(self) -> list[Step]:
        from kubernetes import client

        core, apps = client.CoreV1Api(self.api), client.AppsV1Api(self.api)
        steps = plan(self.opts, self.mode, self.stamp)
        n = len(self.opts.deployments)
        for name in self.opts.deployments:  # before anything changes
            self._preflight(apps, name)
        self._configmap(core, steps[0])
        for name, step in zip(self.opts.deployments, steps[1 : 1 + n], strict=True):
            self._restart(apps, name, step)
        for i, name in enumerate(self.opts.deployments):
            wait, check = steps[1 + n + 2 * i], steps[2 + n + 2 * i]
            deployment = self._wait(apps, name)
            wait.done, wait.detail = True, "rolled out"
            check.detail = self._check_pods(core, deployment)
            check.done = True
        return steps

    def _restart(self, apps: Any, name: str, step: Step) -> None:
        body = restart_patch(self.stamp)
        self._call(
            step,
            lambda: apps.patch_namespaced_deployment(
                name, self.opts.namespace, body, _content_type=STRATEGIC
            ),
        )
        step.done = True

    def _call(self, step: Step, fn: Callable[[], Any]) -> Any:
        from kubernetes.client.exceptions import ApiException

        try:
            return fn()
        except ApiException as exc:
            raise ModeSwitchError(
                f"{step.what}: Kubernetes answered {exc.status} {exc.reason}"
            ) from None
        except OSError as exc:  # urllib3 connection errors are OSErrors
            raise ModeSwitchError(f"{step.what}: cannot reach the Kubernetes API: {exc}") from None

    def _configmap(self, core: Any, step: Step) -> None:
        from kubernetes.client.exceptions import ApiException

        ns, name, key = self.opts.namespace, self.opts.configmap, self.opts.key
        current = self._call(step, lambda: core.read_namespaced_config_map(name, ns))
        value = (current.data or {}).get(key)
        if self.mode == "LIVE" and value is None:
            step.done, step.detail = True, f"{key} already absent"
            return
        ctype, body = configmap_patch(self.opts, self.mode)
        try:
            core.patch_namespaced_config_map(name, ns, body, _content_type=ctype)
        except ApiException as exc:
            raise ModeSwitchError(
                f"{step.what}: Kubernetes answered {exc.status} {exc.reason}"
            ) from None
        step.done, step.detail = True, f"was {value!r}"
        log.info("configmap %s/%s: %s", ns, name, step.what)

    def _preflight(self, apps: Any, name: str) -> None:
        step = Step(f"read deployment/{name}", "GET")
        d = self._call(step, lambda: apps.read_namespaced_deployment(name, self.opts.namespace))
        how = _reads_key(d, self.opts.configmap, self.opts.key)
        if how is None:
            raise ModeSwitchError(
                f"deployment/{name} does not read {self.opts.key} from configmap "
                f"{self.opts.configmap}: restarting it cannot change its mode; nothing was changed"
            )
        if self.mode == "LIVE" and how == "required-key":
            raise ModeSwitchError(
                f"deployment/{name} needs {self.opts.key} (a configMapKeyRef without "
                "optional: true): removing the key would stop its pods from starting; "
                "nothing was changed"
            )

    def _wait(self, apps: Any, name: str) -> Any:
        """Like `kubectl rollout status`: the new generation observed, every replica updated
        and available, no old replica left."""
        deadline = time.monotonic() + self.opts.rollout_timeout_seconds
        step = Step(f"wait for deployment/{name}", "GET")
        while True:
            d = self._call(step, lambda: apps.read_namespaced_deployment(name, self.opts.namespace))
            st, want = d.status, d.spec.replicas if d.spec.replicas is not None else 1
            if (
                (st.observed_generation or 0) >= (d.metadata.generation or 0)
                and (st.updated_replicas or 0) == want
                and (st.replicas or 0) == want
                and (st.available_replicas or 0) == want
            ):
                log.info("deployment/%s rolled out (%d replicas)", name, want)
                return d
            if time.monotonic() >= deadline:
                raise ModeSwitchError(
                    f"deployment/{name} did not roll out within "
                    f"{self.opts.rollout_timeout_seconds:g} s ({st.updated_replicas or 0} of "
                    f"{want} updated, {st.available_replicas or 0} available)"
                )
            self.sleep(0.5)

    def _check_pods(self, core: Any, deployment: Any) -> str:
        name = deployment.metadata.name
        labels = deployment.spec.selector.match_labels or {}
        selector = ",".join(f"{k}={v}" for k, v in sorted(labels.items()))
        step = Step(f"list the pods of deployment/{name}", "GET")
        pods = self._call(
            step, lambda: core.list_namespaced_pod(self.opts.namespace, label_selector=selector)
        ).items
        live = [p for p in pods if p.metadata.deletion_timestamp is None]
        stale = [
            p.metadata.name
            for p in live
            if (p.metadata.annotations or {}).get(RESTARTED_AT) != self.stamp
            or p.status.phase != "Running"
            or not any(c.type == "Ready" and c.status == "True" for c in p.status.conditions or [])
        ]
        if not live or stale:
            raise ModeSwitchError(
                f"deployment/{name}: pods not running with the new {self.opts.key}: "
                + (", ".join(stale) if stale else "no pod")
            )
        return f"{len(live)} pod(s) restarted at {self.stamp}, running and ready"


def _reads_key(deployment: Any, configmap: str, key: str) -> str | None:
    """How the pods get ``key``: "env-from" (the whole ConfigMap), "optional-key" or
    "required-key" (a configMapKeyRef), or None (they do not)."""
    for c in deployment.spec.template.spec.containers or []:
        for var in c.env or []:
            ref = var.value_from.config_map_key_ref if var.value_from else None
            if ref is not None and ref.name == configmap and ref.key == key:
                return "optional-key" if ref.optional else "required-key"
        for source in c.env_from or []:
            if source.config_map_ref is not None and source.config_map_ref.name == configmap:
                return "env-from"
    return None
