"""A Kubernetes API server for the operator tests: kmock's KubernetesEmulator over HTTP,
extended where it falls short of the real one, and the operator run against it as a
process, as in production (``bosun operator --kubeconfig ...``).

What the emulator gains here (subclass, not changes to production code):
- server-set metadata: ``uid``, ``resourceVersion``, ``creationTimestamp``, ``generation``
  (bumped when ``spec`` changes);
- server-side apply creates an object that does not exist yet (kmock only patches);
- the ``scale`` subresource of Workspaces, as the CRD declares it;
- every request is recorded as (API group, resource, verb), for the RBAC check.
"""

from __future__ import annotations

import asyncio
import copy
import itertools
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp.web
import httpx
import kmock
import yaml
from kmock._internal import enums

from bosun.api.crd import crds

TOKEN = "operator-token"  # the operator's credentials: its requests are the recorded ones
GATEWAY_TOKEN = "gateway-token"  # the gateway's, recorded apart (Emulator.gateway_calls)
# Every (group, resource, verb) any operator process sent in this test session.
RECORDED: set[tuple[str, str, str]] = set()

WORKSPACES = "/apis/bosun.dev/v1alpha1"

# (group/version/plural, kind, namespaced, subresources)
RESOURCES = [
    ("bosun.dev/v1alpha1/workspaces", "Workspace", True, {"status", "scale"}),
    ("bosun.dev/v1alpha1/ragengines", "RAGEngine", True, {"status"}),
    ("v1/persistentvolumeclaims", "PersistentVolumeClaim", True, {"status"}),
    ("apps/v1/deployments", "Deployment", True, {"status", "scale"}),
    ("v1/services", "Service", True, set()),
    ("discovery.k8s.io/v1/endpointslices", "EndpointSlice", True, set()),
    ("v1/configmaps", "ConfigMap", True, set()),
    ("v1/pods", "Pod", True, {"status"}),
    ("v1/nodes", "Node", False, {"status"}),
    ("v1/events", "Event", True, set()),
    ("batch/v1/jobs", "Job", True, {"status"}),
    ("leaderworkerset.x-k8s.io/v1/leaderworkersets", "LeaderWorkerSet", True, {"status"}),
    ("karpenter.sh/v1/nodeclaims", "NodeClaim", False, {"status"}),
    ("v1/namespaces", "Namespace", False, set()),
    ("kopf.dev/v1/clusterkopfpeerings", "ClusterKopfPeering", False, set()),
    ("kopf.dev/v1/kopfpeerings", "KopfPeering", True, set()),
    ("apiextensions.k8s.io/v1/customresourcedefinitions", "CustomResourceDefinition", False, set()),
]
DRA_RESOURCES = [
    ("resource.k8s.io/v1/resourceclaimtemplates", "ResourceClaimTemplate", True, set()),
    ("resource.k8s.io/v1/resourceclaims", "ResourceClaim", True, {"status"}),
    ("resource.k8s.io/v1/resourceslices", "ResourceSlice", False, set()),
    ("resource.k8s.io/v1/deviceclasses", "DeviceClass", False, set()),
]


def _verb(request: kmock.Request) -> str:
    if request.action == enums.action.WATCH:
        return "watch"
    method = str(request.method).upper().rsplit(".", 1)[-1]
    if method == "GET":
        return "get" if request.name else "list"
    if method == "DELETE":
        return "delete" if request.name else "deletecollection"
    return {"POST": "create", "PUT": "update", "PATCH": "patch"}.get(method, method.lower())


class _ByResource(dict[Any, Any]):
    """kmock's store of objects (a dict keyed by resource, namespace and name), also
    indexed by resource: a list reads that resource's objects, not every object."""

    def __init__(self) -> None:
        super().__init__()
        self.index: dict[tuple[Any, ...], dict[Any, Any]] = {}  # (group, version, plural)

    def __setitem__(self, key: Any, value: Any) -> None:
        super().__setitem__(key, value)
        resource = key[0]
        self.index.setdefault((resource.group, resource.version, resource.plural), {})[key] = 1

    def __delitem__(self, key: Any) -> None:
        super().__delitem__(key)
        resource = key[0]
        self.index.get((resource.group, resource.version, resource.plural), {}).pop(key, None)

    def of(self, resource: Any) -> list[tuple[Any, Any]]:
        keys = self.index.get((resource.group, resource.version, resource.plural), {})
        return [(key, self[key]) for key in keys]

    def of_plural(self, plural: str) -> list[tuple[Any, Any]]:
        """The objects of every resource named ``plural`` (any group and version)."""
        return [
            (key, self[key])
            for (_, _, p), keys in self.index.items()
            if p == plural
            for key in keys
        ]


class Emulator(kmock.KubernetesEmulator):
    """kmock's emulator with the server-side behaviour the operator relies on."""

    def __attrs_post_init__(self) -> None:
        super().__attrs_post_init__()
        # kmock keeps its objects in a plain dict and compares every one with each request
        # (a get, a patch, a list): each of the operator's calls cost O(N) at N
        # Workspaces, and the emulator, not the operator, was what grew with N
        # (benchmarks/operator_bench.py). Indexed by resource here, named requests looked up.
        object.__setattr__(self._objects, "_objects", _ByResource())
        self._versions = itertools.count(1000)
        self.calls: set[tuple[str, str, str]] = set()
        # How many of each (group, resource, verb) the operator sent.
        self.counts: Counter[tuple[str, str, str]] = Counter()
        self.gateway_calls: set[tuple[str, str, str]] = set()
        # (plural, name) -> message: writes an admission webhook denies (HTTP 403).
        self.deny: dict[tuple[str, str], str] = {}

    def _KubernetesEmulator__get_objs(self, request: kmock.Request, strict: bool) -> list[Any]:  # noqa: N802
        """The objects a request names (kmock's own lookup, overridden by its mangled
        name): a named request is a dict lookup (the key is what kmock stores: the
        request's resource, namespace and name), a list reads its resource's objects."""
        objects: _ByResource = self._objects._objects
        if request.name is not None and (strict or request.namespace is not None):
            stored = objects.get((request.resource, request.namespace, request.name))
            return [stored] if stored is not None else []
        return [
            obj
            for (_, namespace, name), obj in objects.of(request.resource)
            if (
                namespace == request.namespace if strict else request.namespace in (None, namespace)
            )
            and (request.name is None or name == request.name)
        ]

    def _get_resources(self) -> list[Any]:
        """The declared resources and those of stored objects (kmock's scans them all)."""
        objects: _ByResource = self._objects._objects
        found = {next(iter(keys))[0] for keys in objects.index.values() if keys}
        return list(set(super(kmock.KubernetesEmulator, self)._get_resources()) | found)

    def _key(self, request: kmock.Request) -> Any:
        return (request.resource, request.namespace, request.name)

    def _stored(self, request: kmock.Request) -> Any:
        key = self._key(request)
        if key in self.objects and not self.objects[key].deleted:
            return self.objects[key]
        return None

    async def _handle(self, request: kmock.Request) -> aiohttp.web.StreamResponse:
        # kmock keeps every request and scans them all to route each new one: quadratic at
        # hundreds of Workspaces. Routing needs only the current one; calls are kept above.
        del self._requests[:-1]
        resource = request.resource
        caller = request.headers.get("Authorization")
        if resource is not None and resource.plural and caller:
            plural = resource.plural + (f"/{request.subresource}" if request.subresource else "")
            call = (resource.group or "", plural, _verb(request))
            if caller == f"Bearer {TOKEN}":
                self.calls.add(call)
                self.counts[call] += 1
                RECORDED.add(call)
            elif caller == f"Bearer {GATEWAY_TOKEN}":
                self.gateway_calls.add(call)
        if resource is not None and request.subresource == "scale":
            return await self._scale(request)
        writes = (enums.action.CREATE, enums.action.UPDATE)
        if resource is not None and request.action in writes and not request.subresource:
            name = request.name or (request.data or {}).get("metadata", {}).get("name")
            denied = self.deny.get((resource.plural or "", name or ""))
            if denied is not None:
                return _status(403, "Forbidden", f"admission webhook denied the request: {denied}")
            stored = self._stored(request) if request.name else None
            if resource.plural == "jobs" and stored is not None and isinstance(request.data, dict):
                template = (request.data.get("spec") or {}).get("template")
                if template is not None and template != dict(stored).get("spec", {}).get(
                    "template"
                ):
                    return _status(422, "Invalid", "spec.template: field is immutable")
        if resource is not None and request.action == enums.action.CREATE:
            self._server_fields(request.data, None)
        elif resource is not None and request.action == enums.action.UPDATE and request.name:
            stored = self._stored(request)
            apply = "apply-patch" in request.headers.get("Content-Type", "")
            if stored is None and apply:
                return await self._create_by_apply(request)
            if stored is not None and isinstance(request.data, dict):
                self._server_fields(request.data, dict(stored))
        return await super()._handle(request)

    def _server_fields(self, data: dict[str, Any], stored: dict[str, Any] | None) -> None:
        meta = data.setdefault("metadata", {})
        if stored is None and not meta.get("name") and meta.get("generateName"):
            meta["name"] = meta["generateName"] + uuid.uuid4().hex[:5]
        meta["resourceVersion"] = str(next(self._versions))
        if stored is None:
            meta.setdefault("uid", str(uuid.uuid4()))
            meta["creationTimestamp"] = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
            meta["generation"] = 1
            return
        old_meta = stored.get("metadata") or {}
        # Server-owned fields a client cannot change; kmock would take them from the patch.
        for field in ("uid", "creationTimestamp"):
            if field in old_meta:
                meta[field] = old_meta[field]
        generation = int(old_meta.get("generation") or 1)
        if "spec" in data:
            merged = _merge(copy.deepcopy(stored.get("spec") or {}), data["spec"])
            if merged != stored.get("spec"):
                generation += 1
        meta["generation"] = generation

    async def _create_by_apply(self, request: kmock.Request) -> aiohttp.web.StreamResponse:
        """Server-side apply of an object that does not exist: create it."""
        data = dict(request.data)
        data.setdefault("metadata", {})["name"] = request.name
        if request.namespace:
            data["metadata"]["namespace"] = request.namespace
        self._server_fields(data, None)
        key = self._key(request)
        async with self._lock:
            if key in self.objects and self.objects[key].deleted:
                self.objects[key].create(data)
            else:
                self.objects[key] = data
            raw = self.objects[key].raw
            await self._buses[request.resource].put({"type": "ADDED", "object": raw})
        return aiohttp.web.json_response(raw, status=201)

    async def _scale(self, request: kmock.Request) -> aiohttp.web.StreamResponse:
        """The Workspace's scale subresource: spec.resource.count and status.replicas."""
        key = self._key(request)
        async with self._lock:
            if key not in self.objects or self.objects[key].deleted:
                return aiohttp.web.json_response({"kind": "Status", "code": 404}, status=404)
            obj = self.objects[key]
            if _verb(request) in ("patch", "update"):
                replicas = int((request.data.get("spec") or {}).get("replicas", 0))
                meta = dict(obj.get("metadata") or {})
                patch = {
                    "spec": {"resource": {"count": replicas}},
                    "metadata": {
                        "generation": int(meta.get("generation") or 1) + 1,
                        "resourceVersion": str(next(self._versions)),
                    },
                }
                obj.patch(patch)
                await self._buses[request.resource].put({"type": "MODIFIED", "object": obj.raw})
            raw = obj.raw
        status = raw.get("status") or {}
        return aiohttp.web.json_response(
            {
                "apiVersion": "autoscaling/v1",
                "kind": "Scale",
                "metadata": {"name": request.name, "namespace": request.namespace},
                "spec": {"replicas": raw["spec"].get("resource", {}).get("count", 1)},
                "status": {
                    "replicas": status.get("replicas", 0),
                    "selector": status.get("selector", ""),
                },
            }
        )


def _status(code: int, reason: str, message: str) -> aiohttp.web.StreamResponse:
    body = {
        "apiVersion": "v1",
        "kind": "Status",
        "status": "Failure",
        "code": code,
        "reason": reason,
        "message": message,
    }
    return aiohttp.web.json_response(body, status=code)


def _merge(base: Any, patch: Any) -> Any:
    if not isinstance(base, dict) or not isinstance(patch, dict):
        return patch
    for key, value in patch.items():
        if value is None:
            base.pop(key, None)
        else:
            base[key] = _merge(base.get(key), value)
    return base


class EmulatedCluster:
    """The emulator in a thread of its own, and an HTTP client for the test's side."""

    def __init__(self, dra: bool = True) -> None:
        self.dra = dra
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._stack: Any = None
        self.emulator: Emulator | None = None
        self.url = ""
        self.http: httpx.Client | None = None

    def _run(self, coro: Any) -> Any:
        future: Future[Any] = asyncio.run_coroutine_threadsafe(coro, self._loop)
        return future.result(timeout=30)

    async def _start(self) -> None:
        from contextlib import AsyncExitStack

        self._stack = AsyncExitStack()
        self.emulator = await self._stack.enter_async_context(Emulator())
        server = await self._stack.enter_async_context(kmock.Server(self.emulator))
        self.url = str(server.url).rstrip("/")
        for path, kind, namespaced, subresources in RESOURCES + (DRA_RESOURCES if self.dra else []):
            self.emulator.resources[path] = kmock.ResourceInfo(
                kind=kind,
                namespaced=namespaced,
                subresources=subresources,
                verbs={"get", "list", "watch", "create", "patch", "update", "delete"},
            )

    def start(self) -> EmulatedCluster:
        self._thread.start()
        self._run(self._start())
        self.http = httpx.Client(base_url=self.url, timeout=30)
        # As `bosun install` does: the CRDs and the operator's peering object.
        for crd in crds():
            self.create("/apis/apiextensions.k8s.io/v1/customresourcedefinitions", crd)
        self.create(
            "/apis/kopf.dev/v1/clusterkopfpeerings",
            {
                "apiVersion": "kopf.dev/v1",
                "kind": "ClusterKopfPeering",
                "metadata": {"name": "bosun"},
            },
        )
        return self

    def stop(self) -> None:
        if self.http is not None:
            self.http.close()
        if self._stack is not None:
            self._run(self._stack.aclose())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()

    # ------------------------------------------------------------ client side

    def _check(self, response: httpx.Response) -> Any:
        if response.status_code >= 400:
            raise AssertionError(
                f"{response.request.method} {response.request.url}: "
                f"{response.status_code} {response.text[:500]}"
            )
        return response.json() if response.content else None

    def create(self, path: str, obj: dict[str, Any]) -> Any:
        assert self.http is not None
        return self._check(self.http.post(path, json=obj))

    def get(self, path: str) -> Any:
        assert self.http is not None
        response = self.http.get(path)
        if response.status_code == 404:
            return None
        return self._check(response)

    def list(self, path: str) -> list[dict[str, Any]]:
        return list((self.get(path) or {}).get("items") or [])

    def patch(self, path: str, body: Any) -> Any:
        assert self.http is not None
        return self._check(
            self.http.patch(
                path, json=body, headers={"Content-Type": "application/merge-patch+json"}
            )
        )

    def delete(self, path: str) -> Any:
        assert self.http is not None
        return self._check(self.http.delete(path))

    def kubeconfig(self, directory: Path, token: str = TOKEN) -> Path:
        """A kubeconfig for the emulator, with the operator's credentials by default."""
        path = directory / ("kubeconfig" if token == TOKEN else f"kubeconfig-{token}")
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "emulator", "cluster": {"server": self.url}}],
            "users": [{"name": "operator", "user": {"token": token}}],
            "contexts": [
                {"name": "emulator", "context": {"cluster": "emulator", "user": "operator"}}
            ],
            "current-context": "emulator",
        }
        path.write_text(yaml.safe_dump(config), encoding="utf-8")
        return path

    # ------------------------------------------------------------ workspaces

    def workspace(self, namespace: str, name: str) -> dict[str, Any] | None:
        result: dict[str, Any] | None = self.get(
            f"{WORKSPACES}/namespaces/{namespace}/workspaces/{name}"
        )
        return result

    def apply_workspace(self, namespace: str, name: str, spec: dict[str, Any]) -> Any:
        return self.create(
            f"{WORKSPACES}/namespaces/{namespace}/workspaces",
            {
                "apiVersion": "bosun.dev/v1alpha1",
                "kind": "Workspace",
                "metadata": {"name": name, "namespace": namespace},
                "spec": spec,
            },
        )


class Operator:
    """``bosun operator`` as a process against the emulator; its log is kept for failures."""

    def __init__(self, cluster: EmulatedCluster, directory: Path, priority: int = 100) -> None:
        self.cluster = cluster
        self.directory = directory
        self.priority = priority
        self.process: subprocess.Popen[bytes] | None = None
        self.log = directory / f"operator-{priority}.log"
        self.health_port = self.metrics_port = 0

    def start(self) -> Operator:
        kubeconfig = self.cluster.kubeconfig(self.directory)
        with socket_port() as health, socket_port() as metrics:
            self.health_port, self.metrics_port = health, metrics
        command = [
            sys.executable,
            "-m",
            "bosun.cli.main",
            "operator",
            "--all-namespaces",
            "--kubeconfig",
            str(kubeconfig),
            "--health-port",
            str(health),
            "--metrics-port",
            str(metrics),
            "--priority",
            str(self.priority),
        ]
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env)
        return self

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.kill()

    def reconciled(self) -> float:
        """Workspace reconciles done (created, updated or resumed), from its /metrics."""
        from prometheus_client.parser import text_string_to_metric_families

        try:
            text = httpx.get(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=5).text
        except httpx.HTTPError:
            return 0.0  # not listening yet
        return sum(
            sample.value
            for family in text_string_to_metric_families(text)
            if family.name == "bosun_operator_reconciles"
            for sample in family.samples
            if sample.name.endswith("_total") and sample.labels.get("result") == "applied"
        )

    def tail(self, lines: int = 60) -> str:
        text = self.log.read_text(encoding="utf-8", errors="replace") if self.log.exists() else ""
        return "\n".join(text.splitlines()[-lines:])


WRITES = ("create", "update", "patch", "delete", "deletecollection")


def quiet(cluster: EmulatedCluster, operator: Operator, seconds: float = 2.0) -> Counter[str]:
    """Wait until the operator has sent nothing for ``seconds``; every call it (and any
    earlier operator) sent, by 'verb resource'."""
    assert cluster.emulator is not None
    last, since = -1, time.monotonic()
    while time.monotonic() - since < seconds:
        total = sum(cluster.emulator.counts.values())
        if total != last:
            last, since = total, time.monotonic()
        assert operator.process is not None and operator.process.poll() is None, operator.tail()
        time.sleep(0.2)
    return calls(cluster)


def calls(cluster: EmulatedCluster) -> Counter[str]:
    """Every call the operators sent, by 'verb resource'."""
    assert cluster.emulator is not None
    return Counter(
        {f"{verb} {resource}": n for (_, resource, verb), n in cluster.emulator.counts.items()}
    )


def writes(sent: Counter[str]) -> dict[str, int]:
    """The writes among ``sent`` (peering's own heartbeats aside)."""
    return {
        call: n
        for call, n in sent.items()
        if call.split()[0] in WRITES and not call.endswith("kopfpeerings")
    }


@contextmanager
def socket_port() -> Iterator[int]:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        yield s.getsockname()[1]


def wait_for(
    check: Callable[[], Any], what: str, operator: Operator | None = None, timeout: float = 60
) -> Any:
    """Poll ``check`` until it returns something truthy; fail with the operator's log."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        process = operator.process if operator is not None else None
        if process is not None and process.poll() is not None:
            raise AssertionError(
                f"the operator exited while waiting for {what}:\n{operator.tail()}"
            )
        time.sleep(0.1)
    log = operator.tail() if operator is not None else ""
    raise AssertionError(f"timed out after {timeout} s waiting for {what} (last: {last!r})\n{log}")
