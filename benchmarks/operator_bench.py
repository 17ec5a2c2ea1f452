"""Workspaces reconciled per second, and the operator's memory, against the emulated API
server the tests use (kmock's KubernetesEmulator over HTTP, tests/operator/cluster.py).

For each size N (default 200): start the emulator and `bosun operator` (a process, as in
production), wait until it idles, create N CPU Workspaces (SmolLM2, as example 01) as
fast as the client can, and time until every Workspace has its Deployment and Service
applied and ``status.plan`` written. Reports Workspaces/s and the operator's resident
memory (VmRSS at the end, VmHWM peak) from /proc.

Then a second operator is started over the applied Workspaces, as after an upgrade or
a crash: how long until it has resumed every one (its reconcile counter in /metrics),
and what it sent until it was quiet for 3 s: it should write nothing.

Baseline, measured in the same run against a fresh emulator: the client itself creating
the same Deployments and Services (the objects Bosun renders for those Workspaces) one by
one over HTTP, i.e. the API server's own floor for that many objects. The ratio says what
planning, rendering, server-side apply, watches and status cost on top.

    .venv/bin/python benchmarks/operator_bench.py [--sizes 20 200] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from machine import cpu_flags, cpu_name  # benchmarks/machine.py
from tests.operator.cluster import EmulatedCluster, Operator, quiet, wait_for, writes

from bosun.api import parse_workspace
from bosun.catalog import plan_workspace
from bosun.render import RenderOptions, render_workspace

SPEC: dict[str, Any] = {
    "resource": {"cpu": "2", "memory": "4Gi"},
    "inference": {"preset": {"name": "smollm2-135m-instruct"}},
}
NS = "bench"
PLURALS = {"Deployment": "/apis/apps/v1", "Service": "/api/v1"}


def _memory(pid: int) -> dict[str, int]:
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text(encoding="utf-8").splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            fields[key] = int(value.split()[0]) * 1024
    return fields


class _Done:
    """Whether every Workspace has its Deployment, its Service and ``status.plan``: counted
    in the emulator's own memory (listing thousands of objects over HTTP twice a second
    would be work for the emulator too, and slow what it measures). The check runs in the
    emulator's thread, so it must stay cheap as N grows: the owned objects are counted
    from the emulator's index by resource, and a Workspace seen with its plan is not
    looked at again."""

    def __init__(self, cluster: EmulatedCluster, n: int) -> None:
        self.cluster = cluster
        self.n = n
        self.planned: set[Any] = set()

    def __call__(self) -> bool:
        return bool(self.cluster._run(self._count()))

    async def _count(self) -> bool:
        assert self.cluster.emulator is not None
        objects = self.cluster.emulator.objects._objects
        for group, plural in (("apps", "deployments"), ("", "services")):
            keys = objects.index.get((group, "v1", plural), {})
            if sum(1 for key in keys if key[1] == NS) < self.n:
                return False
        for key, obj in objects.of_plural("workspaces"):
            if key not in self.planned and (obj.raw.get("status") or {}).get("plan"):
                self.planned.add(key)
        return len(self.planned) >= self.n


def run_operator(n: int) -> dict[str, Any]:
    cluster = EmulatedCluster(dra=False).start()
    with tempfile.TemporaryDirectory() as tmp:
        operator = Operator(cluster, Path(tmp)).start()
        try:
            wait_for(
                lambda: "Initial authentication has finished" in operator.tail(),
                "the operator",
                operator,
            )
            time.sleep(1.0)  # watches established
            assert operator.process is not None
            idle = _memory(operator.process.pid)
            start = time.perf_counter()
            for i in range(n):
                cluster.apply_workspace(NS, f"ws-{i:04d}", SPEC)
            created = time.perf_counter() - start
            done = _Done(cluster, n)
            while not done():
                if time.perf_counter() - start > 900 or operator.process.poll() is not None:
                    raise AssertionError(f"{n} Workspaces not applied:\n{operator.tail()}")
                time.sleep(0.2)
            elapsed = time.perf_counter() - start
            memory = _memory(operator.process.pid)
            sent = quiet(cluster, operator)
            operator.stop()
            restart = _restart(cluster, Path(tmp), sent, n)
        finally:
            operator.stop()
            cluster.stop()
    per_verb = {
        call: round(count / n, 2) for call, count in sorted(sent.items()) if "watch" not in call
    }
    return {
        "workspaces": n,
        "api_calls_per_workspace": round(sum(per_verb.values()), 2),
        "api_calls_per_workspace_by_verb": per_verb,
        "create_seconds": round(created, 3),
        "seconds": round(elapsed, 3),
        "workspaces_per_second": round(n / elapsed, 1),
        "rss_idle_mib": round(idle["VmRSS"] / 2**20, 1),
        "rss_mib": round(memory["VmRSS"] / 2**20, 1),
        "peak_rss_mib": round(memory["VmHWM"] / 2**20, 1),
        **restart,
    }


def _restart(
    cluster: EmulatedCluster, directory: Path, before: Counter[str], n: int
) -> dict[str, Any]:
    """Start a new operator over the ``n`` applied Workspaces: how long until it has
    resumed every one, and what it sent until then and 3 s after (it should read what it
    must and write nothing)."""
    operator = Operator(cluster, directory, priority=101).start()
    try:
        start = time.perf_counter()
        wait_for(lambda: operator.reconciled() >= n, f"{n} resumed", operator, timeout=900)
        seconds = time.perf_counter() - start
        sent = quiet(cluster, operator, seconds=3.0) - before
    finally:
        operator.stop()
    return {
        "restart_seconds": round(seconds, 1),
        "restart_writes": writes(sent),
        "restart_calls": {c: k for c, k in sorted(sent.items()) if "watch" not in c},
    }


def run_baseline(n: int) -> dict[str, Any]:
    data = {
        "apiVersion": "bosun.dev/v1alpha1",
        "kind": "Workspace",
        "metadata": {"name": "x", "namespace": NS},
        "spec": SPEC,
    }
    objects = []
    for i in range(n):
        ws = parse_workspace({**data, "metadata": {"name": f"ws-{i:04d}", "namespace": NS}})
        rendered = render_workspace(ws, plan_workspace(ws), RenderOptions(namespace=NS))
        objects += [o for o in rendered if o["kind"] in PLURALS]
    cluster = EmulatedCluster(dra=False).start()
    try:
        start = time.perf_counter()
        for obj in objects:
            plural = obj["kind"].lower() + "s"
            cluster.create(f"{PLURALS[obj['kind']]}/namespaces/{NS}/{plural}", obj)
        elapsed = time.perf_counter() - start
    finally:
        cluster.stop()
    return {"objects": len(objects), "seconds": round(elapsed, 3)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[20, 200])
    parser.add_argument("--json", type=Path, help="Write the results here.")
    args = parser.parse_args()
    results = []
    for n in args.sizes:
        baseline = run_baseline(n)
        measured = run_operator(n)
        measured["baseline_seconds"] = baseline["seconds"]
        measured["ratio_to_direct_create"] = round(measured["seconds"] / baseline["seconds"], 2)
        results.append(measured)
        print(
            f"{n:5d} Workspaces: {measured['seconds']:.2f} s until all applied "
            f"({measured['workspaces_per_second']:.0f}/s; creating them took "
            f"{measured['create_seconds']:.2f} s), {measured['ratio_to_direct_create']:.1f}x "
            f"the {baseline['seconds']:.2f} s of creating their {baseline['objects']} "
            f"Deployments and Services directly; operator RSS {measured['rss_idle_mib']:.0f} "
            f"MiB idle, {measured['rss_mib']:.0f} MiB after, "
            f"peak {measured['peak_rss_mib']:.0f} MiB; a restart took "
            f"{measured['restart_seconds']:.1f} s and wrote "
            f"{measured['restart_writes'] or 'nothing'}"
        )
    if args.json:
        record = {
            "cpu": cpu_name(),
            "cpu_flags": cpu_flags(),
            "date": time.strftime("%Y-%m-%d"),
            "results": results,
        }
        args.json.write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
