"""The console in a cluster: Workspaces read from, and applied to, the API server.

It reads Workspaces and their pods' logs, never Secrets. Applying is a server-side apply
(as ``kubectl apply --server-side``, field manager ``bosun-console``): it creates the
Workspace, or sets the fields the YAML gives. The API server decides whether the
console's service account may: the RBAC `bosun install` renders for the gateway lets it
read Workspaces and their pods' logs, not write Workspaces; grant ``patch`` on
``workspaces`` to apply from the page. A refusal is shown as the server words it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bosun.api import API_VERSION, BosunError, Workspace, parse_workspace, read_workspace
from bosun.api.workspace import KIND
from bosun.console.backends import ConsoleError, invalid, plan_json, row
from bosun.operator.kube import Kube, KubeError, kind_of
from bosun.render.names import WORKSPACE_LABEL, dns_label

__all__ = ["FIELD_MANAGER", "ClusterBackend"]

FIELD_MANAGER = "bosun-console"  # server-side apply, as kubectl apply --server-side


def _refused(error: KubeError) -> ConsoleError:
    """The API server's refusal as the page shows it: its own words, its status (a
    server that did not answer, or failed, is a 502)."""
    status = error.status if 400 <= error.status < 500 else 502
    return ConsoleError(status, f"the API server: {error.message or error}")


def _where(name: str) -> tuple[str, str]:
    namespace, _, workspace = name.rpartition("/")
    if not namespace or not workspace:
        raise ConsoleError(404, f"{name!r}: name a Workspace as namespace/name")
    return namespace, workspace


@dataclass
class ClusterBackend:
    """Workspaces in ``namespaces`` (empty: every namespace) of the cluster
    ``kubeconfig`` reaches (default: in-cluster, then ``$KUBECONFIG``)."""

    namespaces: tuple[str, ...] = ()
    kubeconfig: Path | None = None
    allowed_hosts: frozenset[str] = frozenset()
    mode: str = "cluster"
    can_apply: bool = True  # as far as its RBAC allows: the API server says
    _kube: Kube | None = field(default=None, init=False)

    async def _client(self) -> Kube:
        if self._kube is None:
            from bosun.operator.connection import load_configuration

            try:
                self._kube = Kube(await load_configuration(self.kubeconfig))
            except BosunError as exc:
                raise ConsoleError(503, str(exc)) from None
        return self._kube

    async def _call(self, method: str, path: str, **options: Any) -> Any:
        kube = await self._client()
        try:
            return await kube.request(method, path, **options)
        except KubeError as exc:
            raise _refused(exc) from None

    async def _get(self, namespace: str, name: str) -> dict[str, Any] | None:
        try:
            found: dict[str, Any] = await self._call("GET", self._path(namespace, name))
        except ConsoleError as exc:
            if exc.status == 404:
                return None
            raise
        return found

    def _path(self, namespace: str | None = None, name: str | None = None) -> str:
        return kind_of(API_VERSION, KIND).path(namespace, name)

    async def _documents(self) -> list[dict[str, Any]]:
        places = self.namespaces or (None,)
        items: list[dict[str, Any]] = []
        for namespace in places:
            listing = await self._call("GET", self._path(namespace))
            items += listing.get("items") or []
        return items

    async def workspaces(self) -> list[dict[str, Any]]:
        return [row(d) for d in await self._documents()]

    def _check_namespace(self, namespace: str) -> None:
        if self.namespaces and namespace not in self.namespaces:
            raise ConsoleError(
                403,
                f"namespace {namespace!r}: this console shows only {', '.join(self.namespaces)}",
            )

    async def plan(self, name: str) -> dict[str, Any]:
        from bosun.catalog import plan_workspace

        namespace, workspace = _where(name)
        self._check_namespace(namespace)
        document = await self._get(namespace, workspace)
        if document is None:
            raise ConsoleError(404, f"no Workspace {name}")
        try:
            ws = parse_workspace(document, name, self.allowed_hosts)
            return plan_json(plan_workspace(ws), document)
        except BosunError as exc:
            raise invalid(exc) from None

    def _read(self, text: str) -> tuple[Workspace, dict[str, Any]]:
        from bosun.catalog import plan_workspace

        try:
            ws = read_workspace(text, "the Workspace", self.allowed_hosts)
            return ws, plan_json(plan_workspace(ws))
        except BosunError as exc:
            raise invalid(exc) from None

    async def check(self, text: str) -> dict[str, Any]:
        return self._read(text)[1]

    async def apply(self, text: str) -> dict[str, Any]:
        ws, _ = self._read(text)
        document = ws.model_dump(mode="json", by_alias=True, exclude_none=True)
        document.pop("status", None)
        namespace = ws.metadata.namespace or "default"
        self._check_namespace(namespace)
        document["metadata"] = {**document["metadata"], "namespace": namespace}
        name = f"{namespace}/{ws.name}"
        existed = await self._get(namespace, ws.name) is not None
        kube = await self._client()
        try:
            await kube.apply(document, manager=FIELD_MANAGER)
        except KubeError as exc:
            raise _refused(exc) from None
        return {
            "name": name,
            "output": f"workspace {name} {'configured' if existed else 'created'}",
        }

    async def logs(self, name: str, lines: int) -> list[str]:
        namespace, workspace = _where(name)
        self._check_namespace(namespace)
        pods = await self._call(
            "GET",
            f"/api/v1/namespaces/{namespace}/pods",
            query={"labelSelector": f"{WORKSPACE_LABEL}={dns_label(workspace)}"},
        )
        items = sorted(
            pods.get("items") or [],
            key=lambda p: (p.get("metadata") or {}).get("creationTimestamp") or "",
        )
        if not items:
            return []
        pod = items[-1]["metadata"]["name"]
        text = await self._call(
            "GET",
            f"/api/v1/namespaces/{namespace}/pods/{pod}/log",
            query={"tailLines": str(lines)},
            text=True,
        )
        return str(text).splitlines()

    async def close(self) -> None:
        if self._kube is not None:
            await self._kube.close()
            self._kube = None
