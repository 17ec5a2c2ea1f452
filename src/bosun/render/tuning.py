"""Fine-tuning: a Job that runs ``bosun tune`` in the runtime image."""

from __future__ import annotations

from typing import Any

from bosun.api.validators import ALLOW_HOSTS_ENV, parse_allowed_hosts, parse_uri
from bosun.api.workspace import Tuning, Workspace
from bosun.catalog.sizing import Plan
from bosun.render.claims import DeviceBinding
from bosun.render.names import dns_label, metadata, selector_labels
from bosun.render.pods import (
    CONFIG_DIR,
    RenderOptions,
    config_map_name,
    container_security,
    placement,
    pod_security,
    pvc_mount_path,
    server_container,
)

__all__ = ["tuning_config", "tuning_job"]

COMPONENT = "tuning"
INPUT_DIR = "/data/input"
OUTPUT_DIR = "/data/output"


def _location(uri: str) -> str:
    parsed = parse_uri(uri, ("hf", "file", "pvc", "http", "https", "oci"))
    if parsed.scheme == "pvc":
        return f"{pvc_mount_path(parsed.authority)}/{parsed.path}".rstrip("/")
    if parsed.scheme == "file":
        return parsed.path
    return uri


def tuning_config(ws: Workspace, plan: Plan) -> dict[str, Any]:
    """What ``bosun tune`` reads from ``/etc/bosun/tuning.yaml``."""
    tuning = ws.spec.tuning
    assert tuning is not None
    inputs = [_location(u) for u in tuning.input.uris] if tuning.input.uris else [INPUT_DIR]
    output = _location(tuning.output.uri) if tuning.output.uri else OUTPUT_DIR
    return {
        "model": plan.model_ref,
        "method": tuning.method.value,
        "dtype": plan.dtype,
        "inputs": inputs,
        "output": output,
        "config": dict(tuning.config),
    }


def _pvc_claims(tuning: Tuning) -> list[tuple[str, bool]]:
    """(claim, read-only) for every PVC URI among the inputs and the output."""
    found: dict[str, bool] = {}
    for uri in tuning.input.uris:
        parsed = parse_uri(uri, ("hf", "file", "pvc", "http", "https"))
        if parsed.scheme == "pvc":
            found.setdefault(parsed.authority, True)
    if tuning.output.uri:
        parsed = parse_uri(tuning.output.uri, ("file", "pvc", "oci"))
        if parsed.scheme == "pvc":
            found[parsed.authority] = False
    return list(found.items())


def _trusted_hosts(tuning: Tuning, allowed: frozenset[str]) -> list[str]:
    """The input URLs' hosts that the user opted in to (only those, not the whole list)."""
    hosts = {
        parse_uri(u, ("hf", "file", "pvc", "http", "https")).hostname for u in tuning.input.uris
    }
    return sorted(allowed & parse_allowed_hosts(",".join(h for h in hosts if h)))


def tuning_job(
    ws: Workspace, plan: Plan, devices: DeviceBinding, options: RenderOptions
) -> dict[str, Any]:
    tuning = ws.spec.tuning
    assert tuning is not None
    container = server_container(
        ws,
        plan,
        devices,
        options,
        command=["bosun", "tune", "--config", f"{CONFIG_DIR}/tuning.yaml"],
        probes=False,
    )
    container["name"] = "tuner"
    container["image"] = options.bosun_image
    volumes: list[dict[str, Any]] = [
        {"name": "cache", "emptyDir": {}},
        {"name": "tmp", "emptyDir": {}},
        {"name": "config", "configMap": {"name": config_map_name(ws)}},
    ]
    mounts: list[dict[str, Any]] = [
        {"name": "cache", "mountPath": "/cache"},
        {"name": "tmp", "mountPath": "/tmp"},
        {"name": "config", "mountPath": CONFIG_DIR, "readOnly": True},
    ]
    if tuning.input.volume is not None:
        volumes.append({"name": "input", **tuning.input.volume})
        mounts.append({"name": "input", "mountPath": INPUT_DIR, "readOnly": True})
    if tuning.output.volume is not None:
        volumes.append({"name": "output", **tuning.output.volume})
        mounts.append({"name": "output", "mountPath": OUTPUT_DIR})
    for i, (claim, read_only) in enumerate(_pvc_claims(tuning)):
        volumes.append(
            {
                "name": f"pvc-{i}",
                "persistentVolumeClaim": {"claimName": claim, "readOnly": read_only},
            }
        )
        mounts.append(
            {"name": f"pvc-{i}", "mountPath": pvc_mount_path(claim), "readOnly": read_only}
        )
    container["volumeMounts"] = mounts
    container["securityContext"] = container_security()
    trusted = _trusted_hosts(tuning, options.allowed_hosts)
    if trusted:  # the job checks its URLs again: the opt-in goes with them
        container.setdefault("env", []).append(
            {"name": ALLOW_HOSTS_ENV, "value": ",".join(trusted)}
        )
    pod: dict[str, Any] = {
        "restartPolicy": "Never",
        "securityContext": pod_security(),
        "containers": [container],
        "volumes": volumes,
    }
    if devices.pod_claims:
        pod["resourceClaims"] = list(devices.pod_claims)
    pod.update(placement(ws, plan, devices))
    name = dns_label(ws.name, "tuning")
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": metadata(ws, name, COMPONENT, options.namespace),
        "spec": {
            # Retries resume from the last checkpoint in the output location.
            "backoffLimit": 3,
            "template": {
                "metadata": {"labels": {**selector_labels(ws, COMPONENT)}},
                "spec": pod,
            },
        },
    }
