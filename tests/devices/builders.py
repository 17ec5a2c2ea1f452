"""Builders mirroring the helpers of upstream's allocator_testing.go, producing the same
objects as dicts in ``resource.k8s.io/v1`` shape (parsed by Bosun's own models)."""

from __future__ import annotations

from typing import Any

from bosun.devices.allocator import Features
from bosun.devices.model import DeviceClass, ResourceClaim, ResourceSlice
from bosun.devices.nodes import NodeInfo

REGION1, REGION2 = "region-1", "region-2"
NODE1, NODE2 = "node-1", "node-2"
CLASS_A, CLASS_B = "class-a", "class-b"
DRIVER_A, DRIVER_B = "driver-a", "driver-b"
POOL1, POOL2, POOL3, POOL4 = "pool-1", "pool-2", "pool-3", "pool-4"
REQ0, REQ1, REQ2 = "req-0", "req-1", "req-2"
SUB0, SUB1 = "subReq-0", "subReq-1"
CLAIM0, CLAIM1 = "claim-0", "claim-1"
SLICE1, SLICE2, SLICE3, SLICE4 = "slice-1", "slice-2", "slice-3", "slice-4"
DEVICE0, DEVICE1, DEVICE2, DEVICE3, DEVICE4 = (f"device-{i}" for i in range(5))
COUNTER_SET1, COUNTER_SET2 = "counter-set-1", "counter-set-2"
ALL_NODES, PER_DEVICE = "<all nodes>", "<per device>"
MAX = 32

INT_ATTR = f"{DRIVER_A}/numa"
BOOL_ATTR = f"{DRIVER_A}/boolAttribute"
STRING_ATTR = f"{DRIVER_A}/stringAttribute"
VERSION_ATTR = f"{DRIVER_A}/driverVersion"
MISSING_ATTR = f"{DRIVER_A}/NonExistentAttribute"

TAINT_NONE = {"key": "taint-key", "value": "taint-value", "effect": "None"}
TAINT_NO_SCHEDULE = {"key": "taint-key", "value": "taint-value", "effect": "NoSchedule"}
TAINT_NO_EXECUTE = {"key": "taint-key", "value": "taint-value-2", "effect": "NoExecute"}
TOLERATE_NO_SCHEDULE = {"operator": "Exists", "key": "taint-key", "effect": "NoSchedule"}
TOLERATE_NO_EXECUTE = {
    "operator": "Equal",
    "key": "taint-key",
    "value": "taint-value-2",
    "effect": "NoExecute",
}
TOLERATE_KEY1 = {"operator": "Exists", "key": "key1", "effect": "NoSchedule"}


def features(**on: bool) -> Features:
    """Upstream's test features: everything off unless named."""
    base = dict(
        admin_access=False,
        prioritized_list=False,
        partitionable_devices=False,
        device_taints=False,
        device_binding=False,
    )
    base.update(on)
    return Features(**base)


def node(name: str, region: str) -> NodeInfo:
    return NodeInfo(name, {"region": region, "planet": "earth"})


def cel(expression: str) -> dict[str, Any]:
    return {"cel": {"expression": expression}}


def memory_at_least(size: str, driver: str = DRIVER_A) -> dict[str, Any]:
    return cel(f'device.capacity["{driver}"].memory.compareTo(quantity("{size}")) >= 0')


def device_class(
    name: str, driver: str, config: str | None = None, expression: str | None = None
) -> DeviceClass:
    spec: dict[str, Any] = {
        "selectors": [cel(expression or f'device.driver == "{driver}"')],
    }
    if config:
        spec["config"] = [{"opaque": opaque(driver, config)}]
    return DeviceClass.model_validate({"metadata": {"name": name}, "spec": spec})


def opaque(driver: str, attribute: str) -> dict[str, Any]:
    return {"driver": driver, "parameters": {attribute: f"{attribute}Value"}}


def request(
    name: str,
    cls: str,
    count: int | None = 1,
    *selectors: dict[str, Any],
    mode: str = "ExactCount",
    admin: bool | None = None,
    tolerations: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    exactly: dict[str, Any] = {"deviceClassName": cls, "allocationMode": mode}
    if count is not None:
        exactly["count"] = count
    if selectors:
        exactly["selectors"] = list(selectors)
    if admin is not None:
        exactly["adminAccess"] = admin
    if tolerations:
        exactly["tolerations"] = tolerations
    return {"name": name, "exactly": exactly}


def all_request(name: str, cls: str, **kw: Any) -> dict[str, Any]:
    return request(name, cls, None, mode="All", **kw)


def sub(
    name: str,
    cls: str,
    count: int = 1,
    *selectors: dict[str, Any],
    mode: str = "ExactCount",
    tolerations: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    out: dict[str, Any] = {
        "name": name,
        "deviceClassName": cls,
        "allocationMode": mode,
        "count": count,
    }
    if selectors:
        out["selectors"] = list(selectors)
    if tolerations:
        out["tolerations"] = tolerations
    return out


def prioritized(name: str, *subs: dict[str, Any]) -> dict[str, Any]:
    return {"name": name, "firstAvailable": list(subs)}


def claim(
    name: str,
    *requests: dict[str, Any],
    constraints: list[dict[str, Any]] | None = None,
    config: list[dict[str, Any]] | None = None,
) -> ResourceClaim:
    devices: dict[str, Any] = {"requests": list(requests)}
    if constraints is not None:
        devices["constraints"] = constraints
    if config is not None:
        devices["config"] = config
    return ResourceClaim.model_validate({"metadata": {"name": name}, "spec": {"devices": devices}})


def device(
    name: str,
    capacity: dict[str, str] | None = None,
    attributes: dict[str, dict[str, Any]] | None = None,
    *,
    counters: list[tuple[str, dict[str, str]]] | None = None,
    from_counters: bool = False,
    taints: list[dict[str, Any]] | None = None,
    node_selection: Any = None,
    binding: tuple[list[str], list[str]] | None = None,
    binds_to_node: bool | None = None,
) -> dict[str, Any]:
    out: dict[str, Any] = {"name": name}
    if attributes is not None:
        out["attributes"] = attributes
    if capacity:
        out["capacity"] = {k: {"value": v} for k, v in capacity.items()}
    if counters:
        out["consumesCounters"] = [
            {"counterSet": s, "counters": {k: {"value": v} for k, v in c.items()}}
            for s, c in counters
        ]
        if from_counters:
            out["capacity"] = {k: {"value": v} for _, c in counters for k, v in c.items()}
    if taints:
        out["taints"] = taints
    if node_selection is not None:
        out.update(_node_selection(node_selection))
    if binding:
        out["bindingConditions"], out["bindingFailureConditions"] = binding
    if binds_to_node is not None:
        out["bindsToNode"] = binds_to_node
    return out


def _node_selection(selection: Any) -> dict[str, Any]:
    if isinstance(selection, dict):
        return {"nodeSelector": selection}
    if selection == ALL_NODES:
        return {"allNodes": True}
    if selection == PER_DEVICE:
        return {"perDeviceNodeSelection": True}
    return {"nodeName": selection}


def slice_(
    name: str,
    selection: Any,
    pool: str,
    driver: str,
    *devices: dict[str, Any],
    count: int = 1,
    generation: int = 1,
    counter_sets: list[tuple[str, dict[str, str]]] | None = None,
) -> ResourceSlice:
    spec: dict[str, Any] = {
        "driver": driver,
        "pool": {"name": pool, "generation": generation, "resourceSliceCount": count},
        **_node_selection(selection),
    }
    if devices:
        spec["devices"] = list(devices)
    if counter_sets:
        spec["sharedCounters"] = [
            {"name": n, "counters": {k: {"value": v} for k, v in c.items()}}
            for n, c in counter_sets
        ]
    return ResourceSlice.model_validate({"metadata": {"name": name}, "spec": spec})


def one_device(name: str, selection: Any, pool: str, driver: str, **kw: Any) -> ResourceSlice:
    return slice_(name, selection, pool, driver, device(DEVICE1), **kw)


def many_devices(
    name: str, selection: Any, pool: str, driver: str, n: int, **kw: Any
) -> ResourceSlice:
    return slice_(name, selection, pool, driver, *(device(f"device-{i}") for i in range(n)), **kw)


def label_selector(key: str, *values: str) -> dict[str, Any]:
    return {
        "nodeSelectorTerms": [
            {"matchExpressions": [{"key": key, "operator": "In", "values": list(values)}]}
        ]
    }


def local_selector(node_name: str) -> dict[str, Any]:
    return {
        "nodeSelectorTerms": [
            {"matchFields": [{"key": "metadata.name", "operator": "In", "values": [node_name]}]}
        ]
    }


def result(
    req: str,
    driver: str,
    pool: str,
    dev: str,
    admin: bool = False,
    tolerations: list[dict[str, Any]] | None = None,
    binding: tuple[list[str], list[str]] | None = None,
) -> dict[str, Any]:
    out: dict[str, Any] = {"request": req, "driver": driver, "pool": pool, "device": dev}
    if admin:
        out["adminAccess"] = True
    if tolerations:
        out["tolerations"] = tolerations
    if binding and binding[0]:
        out["bindingConditions"], out["bindingFailureConditions"] = binding
    return out


def many_results(req: str, driver: str, pool: str, count: int, start: int) -> list[dict[str, Any]]:
    return [result(req, driver, pool, f"device-{i}") for i in range(start, start + count)]


def allocation(
    selector: dict[str, Any] | None,
    *results: dict[str, Any],
    config: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    out: dict[str, Any] = {"devices": {"results": list(results)}}
    if config:
        out["devices"]["config"] = config
    if selector is not None:
        out["nodeSelector"] = selector
    return out
