"""The operator's one door to the API server: server-side apply, reads, deletes, status.

Built on the official client's asyncio API (``kubernetes.aio``) so that it runs in kopf's
event loop, with paths computed from a table of the kinds Bosun touches (no discovery
round trips). Errors become :class:`KubeError` with the server's own message.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from kubernetes.aio.client import ApiClient, Configuration

__all__ = [
    "FIELD_MANAGER",
    "Kind",
    "Kube",
    "KubeError",
    "kind_of",
]

FIELD_MANAGER = "bosun"


@dataclass(frozen=True)
class Kind:
    api_version: str
    kind: str
    plural: str
    namespaced: bool

    def path(self, namespace: str | None = None, name: str | None = None) -> str:
        base = (
            f"/api/{self.api_version}"
            if "/" not in self.api_version
            else (f"/apis/{self.api_version}")
        )
        if self.namespaced and namespace:
            base += f"/namespaces/{namespace}"
        base += f"/{self.plural}"
        return f"{base}/{name}" if name else base


_KINDS = [
    Kind("bosun.dev/v1alpha1", "Workspace", "workspaces", True),
    Kind("bosun.dev/v1alpha1", "RAGEngine", "ragengines", True),
    Kind("v1", "PersistentVolumeClaim", "persistentvolumeclaims", True),
    Kind("apps/v1", "Deployment", "deployments", True),
    Kind("v1", "Service", "services", True),
    Kind("v1", "ConfigMap", "configmaps", True),
    Kind("v1", "Pod", "pods", True),
    Kind("v1", "Node", "nodes", False),
    Kind("batch/v1", "Job", "jobs", True),
    Kind("leaderworkerset.x-k8s.io/v1", "LeaderWorkerSet", "leaderworkersets", True),
    Kind("karpenter.sh/v1", "NodeClaim", "nodeclaims", False),
    Kind("resource.k8s.io/v1", "ResourceClaimTemplate", "resourceclaimtemplates", True),
    Kind("resource.k8s.io/v1", "ResourceClaim", "resourceclaims", True),
    Kind("resource.k8s.io/v1", "ResourceSlice", "resourceslices", False),
    Kind("resource.k8s.io/v1", "DeviceClass", "deviceclasses", False),
]
_BY_KIND = {(k.api_version, k.kind): k for k in _KINDS}


def kind_of(api_version: str, kind: str) -> Kind:
    try:
        return _BY_KIND[(api_version, kind)]
    except KeyError:
        raise ValueError(f"the operator does not manage {kind} of {api_version}") from None


class KubeError(Exception):
    """A request the API server refused; ``status`` is the HTTP code (0: no answer)."""

    def __init__(self, status: int, reason: str, message: str, *, request: str = "") -> None:
        self.status = status
        self.reason = reason
        self.message = message
        self.request = request
        super().__init__(f"{request}: {status} {reason}: {message}" if request else message)

    @property
    def not_found(self) -> bool:
        return self.status == 404

    @property
    def transient(self) -> bool:
        """Worth retrying as is: conflicts, throttling, server errors, no answer."""
        return self.status in (0, 409, 429) or self.status >= 500


class Kube:
    """An API server connection; :meth:`close` it when done."""

    def __init__(self, configuration: Configuration) -> None:
        self.configuration = configuration
        self._api = ApiClient(configuration)

    async def close(self) -> None:
        await self._api.close()

    async def request(
        self,
        method: str,
        path: str,
        *,
        query: dict[str, str] | None = None,
        body: Any = None,
        content_type: str = "application/json",
        text: bool = False,
    ) -> Any:
        """One API call; the decoded JSON answer (``text``: the answer as text, as a pod's
        log), or :class:`KubeError`."""
        accept = "*/*" if text else "application/json"
        headers = {"Accept": accept, "Content-Type": content_type}
        method_, url, headers_, body_, _ = await self._api.param_serialize(
            method,
            path,
            query_params=list((query or {}).items()),
            header_params=headers,
            body=body,
            auth_settings=["BearerToken"],
        )
        what = f"{method} {path}"
        try:
            response = await self._api.call_api(method_, url, headers_, body_)
            data = await response.read()
        except OSError as exc:
            raise KubeError(0, "Unreachable", str(exc), request=what) from None
        except Exception as exc:  # the client's ApiException for non-2xx answers
            status = int(getattr(exc, "status", 0) or 0)
            if not status:
                raise KubeError(0, "Unreachable", str(exc), request=what) from None
            raise _error(status, getattr(exc, "body", None), what) from None
        if response.status >= 400:
            raise _error(response.status, data, what)
        if text:
            return data.decode("utf-8", errors="replace")
        return json.loads(data) if data else None

    # --------------------------------------------------------------------- verbs

    async def apply(
        self, obj: dict[str, Any], *, subresource: str = "", manager: str = FIELD_MANAGER
    ) -> dict[str, Any]:
        """Server-side apply as field manager ``manager`` (the operator's, ``bosun``, by
        default), taking over conflicting fields."""
        meta = obj["metadata"]
        kind = kind_of(obj["apiVersion"], obj["kind"])
        path = kind.path(meta.get("namespace"), meta["name"])
        if subresource:
            path += f"/{subresource}"
        result: dict[str, Any] = await self.request(
            "PATCH",
            path,
            query={"fieldManager": manager, "force": "true"},
            body=obj,
            content_type="application/apply-patch+yaml",
        )
        return result

    async def get(
        self, api_version: str, kind: str, name: str, namespace: str | None = None
    ) -> dict[str, Any] | None:
        try:
            result: dict[str, Any] = await self.request(
                "GET", kind_of(api_version, kind).path(namespace, name)
            )
        except KubeError as exc:
            if exc.not_found:
                return None
            raise
        return result

    async def list(
        self,
        api_version: str,
        kind: str,
        namespace: str | None = None,
        label_selector: str | None = None,
    ) -> list[dict[str, Any]]:
        query = {"labelSelector": label_selector} if label_selector else None
        result = await self.request("GET", kind_of(api_version, kind).path(namespace), query=query)
        return list(result.get("items") or [])

    async def delete(
        self, api_version: str, kind: str, name: str, namespace: str | None = None
    ) -> bool:
        """Delete one object in the background; False when it was already gone."""
        try:
            await self.request(
                "DELETE",
                kind_of(api_version, kind).path(namespace, name),
                body={"propagationPolicy": "Background"},
            )
        except KubeError as exc:
            if exc.not_found:
                return False
            raise
        return True

    async def patch_status(
        self, api_version: str, kind: str, name: str, namespace: str | None, status: Any
    ) -> None:
        """Merge-patch ``status`` through the status subresource."""
        path = kind_of(api_version, kind).path(namespace, name) + "/status"
        await self.request(
            "PATCH", path, body={"status": status}, content_type="application/merge-patch+json"
        )

    async def served(self, group_version: str) -> bool:
        """Whether the API server serves ``group/version`` (as ``resource.k8s.io/v1``)."""
        try:
            await self.request("GET", f"/apis/{group_version}")
        except KubeError as exc:
            if exc.status in (403, 404):
                return False
            raise
        return True


def _error(status: int, data: Any, what: str) -> KubeError:
    reason, message = "", ""
    try:
        payload = json.loads(data) if isinstance(data, bytes | str) else data
        if isinstance(payload, dict):
            reason = str(payload.get("reason") or "")
            message = str(payload.get("message") or "")
    except ValueError:
        message = data.decode("utf-8", "replace") if isinstance(data, bytes) else str(data)
    return KubeError(status, reason or "Error", message or "(no message)", request=what)
