"""GPUs for local workspaces, with the stand-in NVML of the discovery tests (two H100s)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from bosun.api import load_workspace
from bosun.catalog import plan_workspace
from bosun.local.devices import allocate, machine
from bosun.local.runtime import LocalError, serve_command, up
from bosun.local.state import Record, Store
from tests.devices.test_discovery import FakeNVML

ROOT = Path(__file__).resolve().parents[2]
ONE_GPU = ROOT / "examples" / "02-llama-8b-one-gpu.yaml"


def test_the_machine_is_planned_with_its_gpu_and_a_cpu_host_with_its_memory() -> None:
    here = machine(nvml=FakeNVML(gpus=2))
    assert here.profile.kind == "gpu" and here.profile.product_name == "NVIDIA H100 80GB HBM3"
    assert here.uuid("gpu-1") == "GPU-00000001"

    cpu = machine(nvml=FakeNVML(gpus=0))
    assert cpu.slice is None and cpu.profile.kind == "cpu" and cpu.profile.memory_bytes > 2**30


def test_exclusive_gpus_are_never_handed_out_twice() -> None:
    here = machine(nvml=FakeNVML(gpus=2))
    ws = load_workspace(ONE_GPU)
    plan = plan_workspace(ws, target="local", local_profile=here.profile)
    assert plan.fits and plan.devices_per_replica == 1
    first = allocate(ws, plan, here, held=set())
    assert first is not None and len(first) == 1
    second = allocate(ws, plan, here, held=set(first))
    assert second is not None and second != first
    assert allocate(ws, plan, here, held={*first, *second}) is None
    assert serve_command(ws, plan, 8000)[-2:] == ["--device", "cuda"]


def test_up_refuses_when_other_workspaces_hold_every_gpu(tmp_path: Path) -> None:
    here = machine(nvml=FakeNVML(gpus=2))
    ws = load_workspace(ONE_GPU)
    plan = plan_workspace(ws, target="local", local_profile=here.profile)
    store = Store(tmp_path)
    holder = Record(
        name="holder",
        model="m",
        file="f",
        port=1,
        command=["true"],
        devices=["gpu-0", "gpu-1"],
        state="Starting",
        supervisor_pid=os.getpid(),  # alive: its devices are held
    )
    store.put(holder)
    with pytest.raises(LocalError, match=r"no free .* \(held by other workspaces: gpu-0, gpu-1"):
        up(store, ws, plan, str(ONE_GPU), here=here)
    assert [r.name for r in store.all()] == ["holder"]  # nothing else was stored
