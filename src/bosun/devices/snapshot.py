"""A cluster snapshot from multi-document YAML: DeviceClasses, ResourceSlices,
ResourceClaims (with ``status.allocation``: already allocated; without: to allocate, in
document order, as one pod's claims), ResourceClaimTemplates (allocated as a claim of the
template's name) and Nodes (for labels). ``kind: List`` documents are unpacked, so the
output of ``kubectl get ... -o yaml`` works as is.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from bosun.api.errors import BosunError
from bosun.api.load import load_yaml_documents, problems_from
from bosun.devices.allocator import DeviceID
from bosun.devices.model import (
    API_VERSIONS,
    DeviceClass,
    Node,
    ResourceClaim,
    ResourceClaimTemplate,
    ResourceSlice,
)
from bosun.devices.nodes import NodeInfo

__all__ = ["Snapshot", "SnapshotError", "load_snapshot", "parse_snapshot"]

_KINDS: dict[str, type[BaseModel]] = {
    "DeviceClass": DeviceClass,
    "ResourceSlice": ResourceSlice,
    "ResourceClaim": ResourceClaim,
    "ResourceClaimTemplate": ResourceClaimTemplate,
}


class SnapshotError(BosunError):
    """An object of the snapshot that does not parse; the message names it and the field."""


@dataclass
class Snapshot:
    classes: list[DeviceClass] = field(default_factory=list)
    slices: list[ResourceSlice] = field(default_factory=list)
    claims: list[ResourceClaim] = field(default_factory=list)  # to allocate, in order
    allocated_claims: list[ResourceClaim] = field(default_factory=list)
    nodes: list[Node] = field(default_factory=list)

    def allocated_devices(self) -> set[DeviceID]:
        """Devices that allocated claims hold (admin-access results do not hold devices)."""
        held: set[DeviceID] = set()
        for claim in self.allocated_claims:
            assert claim.status is not None and claim.status.allocation is not None
            for r in claim.status.allocation.devices.results:
                if not r.admin_access:
                    held.add((r.driver, r.pool, r.device))
        return held

    def node_infos(self) -> list[NodeInfo]:
        """The Nodes given, else every node a ResourceSlice names, in name order."""
        if self.nodes:
            return [NodeInfo(n.metadata.name, dict(n.metadata.labels)) for n in self.nodes]
        names = {s.spec.node_name for s in self.slices if s.spec.node_name}
        names |= {d.node_name for s in self.slices for d in s.spec.devices if d.node_name}
        return [NodeInfo(name) for name in sorted(names)]


def _documents(data: list[Any]) -> Iterator[tuple[int, Any]]:
    for index, document in enumerate(data, start=1):
        if isinstance(document, dict) and document.get("kind") == "List":
            for item in document.get("items") or []:
                yield index, item
        elif document is not None:
            yield index, document


def _describe(document: Any) -> str:
    if not isinstance(document, dict):
        return "a non-object"
    name = (document.get("metadata") or {}).get("name", "<unnamed>")
    return f"{document.get('kind', '<no kind>')} {name}"


def parse_snapshot(documents: list[Any], source: str) -> Snapshot:
    snapshot = Snapshot()
    for index, document in _documents(documents):
        where = f"{source}: document {index} ({_describe(document)})"
        if not isinstance(document, dict):
            raise SnapshotError(f"{where}: expected a Kubernetes object")
        kind, api_version = document.get("kind"), document.get("apiVersion")
        if kind == "Node":
            model: type[BaseModel] = Node
            if api_version != "v1":
                raise SnapshotError(f"{where}: apiVersion: a Node is v1, not {api_version!r}")
        elif kind in _KINDS:
            model = _KINDS[kind]
            if api_version not in API_VERSIONS:
                raise SnapshotError(
                    f"{where}: apiVersion: expected one of {', '.join(API_VERSIONS)}, "
                    f"got {api_version!r}"
                )
        else:
            known = ", ".join([*_KINDS, "Node", "List"])
            raise SnapshotError(f"{where}: kind: {kind!r} is not one of {known}")
        try:
            obj = model.model_validate(document)
        except ValidationError as exc:
            problems = "; ".join(str(p) for p in problems_from(exc))
            raise SnapshotError(f"{where}: {problems}") from None
        if isinstance(obj, DeviceClass):
            snapshot.classes.append(obj)
        elif isinstance(obj, ResourceSlice):
            snapshot.slices.append(obj)
        elif isinstance(obj, Node):
            snapshot.nodes.append(obj)
        elif isinstance(obj, ResourceClaimTemplate):
            snapshot.claims.append(ResourceClaim(metadata=obj.metadata, spec=obj.spec.spec))
        elif isinstance(obj, ResourceClaim):
            allocated = obj.status is not None and obj.status.allocation is not None
            (snapshot.allocated_claims if allocated else snapshot.claims).append(obj)
    return snapshot


def load_snapshot(path: str | Path) -> Snapshot:
    source = str(path)
    try:
        text = Path(path).read_text("utf-8")
    except OSError as exc:
        raise SnapshotError(f"{source}: cannot read the file: {exc.strerror}") from None
    try:
        documents = load_yaml_documents(text)
    except Exception as exc:  # yaml.YAMLError, with position
        mark = getattr(exc, "problem_mark", None)
        at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise SnapshotError(
            f"{source}: malformed YAML{at}: {getattr(exc, 'problem', exc)}"
        ) from None
    return parse_snapshot(documents, source)
