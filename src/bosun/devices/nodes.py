"""Node selection: which nodes a ResourceSlice or a device is available on.

The semantics of ``v1.NodeSelector`` (``k8s.io/component-helpers/scheduling/corev1/
nodeaffinity``): terms are ORed, requirements in a term ANDed, an empty term matches
nothing; ``matchFields`` supports only ``metadata.name``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from bosun.devices.model import NodeSelector, NodeSelectorRequirement

__all__ = ["NodeInfo", "node_matches", "selector_matches"]


@dataclass(frozen=True)
class NodeInfo:
    name: str
    labels: Mapping[str, str] = field(default_factory=dict)


def _requirement(req: NodeSelectorRequirement, value: str | None) -> bool:
    op = req.operator
    if op == "In":
        return value is not None and value in req.values
    if op == "NotIn":
        return value is None or value not in req.values
    if op == "Exists":
        return value is not None
    if op == "DoesNotExist":
        return value is None
    # Gt / Lt compare integers; a non-integer label never matches.
    if value is None or len(req.values) != 1:
        return False
    try:
        left, right = int(value), int(req.values[0])
    except ValueError:
        return False
    return left > right if op == "Gt" else left < right


def selector_matches(selector: NodeSelector, node: NodeInfo) -> bool:
    for term in selector.node_selector_terms:
        if not term.match_expressions and not term.match_fields:
            continue
        ok = all(_requirement(r, node.labels.get(r.key)) for r in term.match_expressions)
        ok = ok and all(
            r.key == "metadata.name" and _requirement(r, node.name) for r in term.match_fields
        )
        if ok:
            return True
    return False


def node_matches(
    node: NodeInfo, node_name: str | None, all_nodes: bool | None, selector: NodeSelector | None
) -> bool:
    """Whether something with this node selection is available on ``node``."""
    if node_name:
        return node.name == node_name
    if all_nodes:
        return True
    if selector is not None:
        return selector_matches(selector, node)
    return False
