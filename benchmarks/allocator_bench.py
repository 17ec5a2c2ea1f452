"""DRA allocator speed on synthetic NVIDIA-like clusters.

Clusters of N nodes (8 GPUs each; every fifth node has one GPU split into seven MIG
1g.10gb slices; half the nodes put all GPUs on one PCIe root, the others two roots of
four; 30% of devices already allocated; seed 0). For each size it measures, per node
(median over every node) and for a whole-cluster search (every node, as kube-scheduler's
filter does):

- ``1gpu``: one GPU with at least 40 GiB (a CEL memory selector);
- ``8gpu``: eight GPUs with matchAttribute on ``resource.kubernetes.io/pcieRoot``;
- ``prio``: firstAvailable [an 80 GiB GPU, else two MIG 1g.10gb slices].

Each claim is measured on an allocator of its own, which has not seen a claim yet
(``cluster_ms``: every node's pools are gathered on the way), then again on the same
allocator (``cluster_ms_reused``: the snapshot reused, as a scheduler placing pod after
pod does). ``build_ms`` is the allocator's construction from the snapshot's objects.

The baseline, measured in the same run, is a hand-written Python filter that checks the
same memory condition on a node's free devices without DRA semantics; the ratio says
what the faithful allocator costs on top. Targets (issue 23), at 5,000 nodes: a 1-GPU
claim under 250 ms, an 8-GPU claim under 500 ms, the build under 1 s.

    .venv/bin/python benchmarks/allocator_bench.py [--sizes 100 1000 2000 5000] [--json FILE]
"""

from __future__ import annotations

import argparse
import gc
import json
import random
import statistics
import time
from pathlib import Path
from typing import Any

from bosun.devices.allocator import Allocator
from bosun.devices.model import DeviceClass, ResourceClaim, ResourceSlice
from bosun.devices.nodes import NodeInfo

DRIVER = "gpu.nvidia.com"
GIB = 2**30


def classes() -> list[DeviceClass]:
    def cls(name: str, kind: str) -> DeviceClass:
        expression = (
            f"device.driver == '{DRIVER}' && device.attributes['{DRIVER}'].type == '{kind}'"
        )
        return DeviceClass.model_validate(
            {
                "metadata": {"name": name},
                "spec": {"selectors": [{"cel": {"expression": expression}}]},
            }
        )

    return [cls("gpu.nvidia.com", "gpu"), cls("mig.nvidia.com", "mig")]


def cluster(
    nodes: int, rng: random.Random
) -> tuple[list[ResourceSlice], list[tuple[str, str, str]]]:
    slices, allocated = [], []
    for n in range(nodes):
        name = f"node-{n:05d}"
        one_root = n % 2 == 0
        devices: list[dict[str, Any]] = []
        for g in range(8):
            common = {
                "productName": {"string": "NVIDIA H100 80GB HBM3"},
                "architecture": {"string": "Hopper"},
                "cudaComputeCapability": {"version": "9.0.0"},
                "driverVersion": {"version": "580.159.4"},
                "resource.kubernetes.io/pcieRoot": {
                    "string": "pci0000:00" if one_root or g < 4 else "pci0000:80"
                },
            }
            if n % 5 == 0 and g == 7:
                for m in range(7):
                    devices.append(
                        {
                            "name": f"gpu-{g}-mig-{m}",
                            "attributes": {
                                **common,
                                "type": {"string": "mig"},
                                "profile": {"string": "1g.10gb"},
                                "uuid": {"string": f"MIG-{n}-{g}-{m}"},
                            },
                            "capacity": {"memory": {"value": str(10 * GIB)}},
                        }
                    )
                continue
            devices.append(
                {
                    "name": f"gpu-{g}",
                    "attributes": {
                        **common,
                        "type": {"string": "gpu"},
                        "uuid": {"string": f"GPU-{n}-{g}"},
                        "index": {"int": g},
                    },
                    "capacity": {"memory": {"value": "85520809984"}},
                }
            )
        for d in devices:
            if rng.random() < 0.30:
                allocated.append((DRIVER, name, d["name"]))
        slices.append(
            ResourceSlice.model_validate(
                {
                    "metadata": {"name": f"{name}-gpus"},
                    "spec": {
                        "driver": DRIVER,
                        "nodeName": name,
                        "pool": {"name": name, "generation": 1, "resourceSliceCount": 1},
                        "devices": devices,
                    },
                }
            )
        )
    return slices, allocated


def claim(
    name: str, requests: list[dict[str, Any]], constraints: list[dict[str, Any]] | None = None
) -> ResourceClaim:
    return ResourceClaim.model_validate(
        {
            "metadata": {"name": name, "namespace": "bench"},
            "spec": {"devices": {"requests": requests, "constraints": constraints or []}},
        }
    )


MEMORY_40 = {
    "cel": {"expression": f"device.capacity['{DRIVER}'].memory.compareTo(quantity('40Gi')) >= 0"}
}
MEMORY_80 = {
    "cel": {"expression": f"device.capacity['{DRIVER}'].memory.compareTo(quantity('79Gi')) >= 0"}
}
CLAIMS = {
    "1gpu": claim(
        "one",
        [
            {
                "name": "gpu",
                "exactly": {"deviceClassName": "gpu.nvidia.com", "selectors": [MEMORY_40]},
            }
        ],
    ),
    "8gpu": claim(
        "eight",
        [{"name": "gpu", "exactly": {"deviceClassName": "gpu.nvidia.com", "count": 8}}],
        [{"matchAttribute": "resource.kubernetes.io/pcieRoot"}],
    ),
    "prio": claim(
        "prio",
        [
            {
                "name": "gpu",
                "firstAvailable": [
                    {"name": "full", "deviceClassName": "gpu.nvidia.com", "selectors": [MEMORY_80]},
                    {"name": "mig", "deviceClassName": "mig.nvidia.com", "count": 2},
                ],
            }
        ],
    ),
}


def baseline(slices: list[ResourceSlice], allocated: set[tuple[str, str, str]], node: str) -> bool:
    """A plain filter: any free GPU on the node with at least 40 GiB."""
    for s in slices:
        if s.spec.node_name != node:
            continue
        for d in s.spec.devices:
            if (DRIVER, s.spec.pool.name, d.name) in allocated:
                continue
            if d.attributes["type"].value == "gpu" and int(d.capacity["memory"].value) >= 40 * GIB:
                return True
    return False


def measure(size: int, rng: random.Random) -> dict[str, Any]:
    slices, allocated = cluster(size, rng)
    gc.collect()  # what making the cluster left is not the allocator's to collect
    start = time.perf_counter()
    allocator = Allocator(classes(), slices, allocated)
    build = time.perf_counter() - start
    nodes = [NodeInfo(s.spec.node_name or "") for s in slices]
    held = set(allocated)
    by_node = {s.spec.node_name: [s] for s in slices}
    out: dict[str, Any] = {"nodes": size, "build_ms": build * 1e3}

    per_node, start = [], time.perf_counter()
    for node in nodes:
        t = time.perf_counter()
        baseline(by_node[node.name], held, node.name)
        per_node.append(time.perf_counter() - t)
    out["baseline"] = {
        "per_node_us": statistics.median(per_node) * 1e6,
        "cluster_ms": (time.perf_counter() - start) * 1e3,
    }
    for label, c in CLAIMS.items():
        # Each claim first on a new allocator (its first claim: every node's pools are
        # gathered), then again on the same one (the snapshot reused, as by a scheduler
        # that places one pod after another).
        if label != next(iter(CLAIMS)):
            allocator = Allocator(classes(), slices, allocated)
        gc.collect()
        per_node, fits, start = [], 0, time.perf_counter()
        for node in nodes:
            t = time.perf_counter()
            result = allocator.allocate(node, [c])
            per_node.append(time.perf_counter() - t)
            fits += result is not None
        cold = time.perf_counter() - start
        start = time.perf_counter()
        again = sum(allocator.allocate(node, [c]) is not None for node in nodes)
        assert again == fits
        out[label] = {
            "per_node_us": statistics.median(per_node) * 1e6,
            "cluster_ms": cold * 1e3,
            "cluster_ms_reused": (time.perf_counter() - start) * 1e3,
            "nodes_fit": fits,
        }
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100, 1000, 2000, 5000])
    parser.add_argument("--json", help="Also write the results to this file.")
    args = parser.parse_args()
    results = [measure(size, random.Random(0)) for size in args.sizes]
    print(
        f"{'nodes':>6} {'claim':>8} {'per node us':>12} {'x baseline':>11} {'cluster ms':>11} "
        f"{'reused ms':>10} {'ms per 1k nodes':>16} {'fit':>6}"
    )
    for r in results:
        base = r["baseline"]["per_node_us"]
        for label in ("baseline", *CLAIMS):
            m = r[label]
            reused = f"{m['cluster_ms_reused']:>10.1f}" if "cluster_ms_reused" in m else " " * 10
            print(
                f"{r['nodes']:>6} {label:>8} {m['per_node_us']:>12.1f} "
                f"{m['per_node_us'] / base:>11.1f} "
                f"{m['cluster_ms']:>11.1f} {reused} {m['cluster_ms'] / r['nodes'] * 1000:>16.1f} "
                f"{m.get('nodes_fit', ''):>6}"
            )
        print(f"{r['nodes']:>6} {'(build)':>8} {'':>12} {'':>11} {r['build_ms']:>11.1f}")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
