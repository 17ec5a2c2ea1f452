"""GPUs for local workspaces, with the stand-in NVML of the discovery tests (two H100s)."""

from __future__ import annotations

from contextlib import ExitStack
from pathlib import Path

import pytest

from bosun.api import load_workspace
from bosun.catalog import plan_workspace
from bosun.local.devices import allocate, machine
from bosun.local.runtime import LocalError, reserve, serve_command, up
from bosun.local.state import Record, Store
from tests.devices.test_discovery import FakeNVML
from tests.local.cli import fake_supervisor

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
    with fake_supervisor(tmp_path, "holder") as supervisor:
        holder = Record(
            name="holder",
            model="m",
            file="f",
            port=1,
            command=["true"],
            devices=["gpu-0", "gpu-1"],
            state="Starting",
            supervisor_pid=supervisor.pid,  # alive: its devices are held
        )
        store.put(holder)
        with pytest.raises(LocalError, match=r"no free .* \(held by other workspaces: gpu-0"):
            up(store, ws, plan, str(ONE_GPU), here=here)
    assert [r.name for r in store.all()] == ["holder"]  # nothing else was stored


SHARED = """
apiVersion: bosun.dev/v1alpha1
kind: Workspace
metadata:
  name: {name}
spec:
  resource:
    count: 2
    accelerator:
      sharing:
        strategy: {strategy}
  inference:
    preset:
      name: qwen2.5-1.5b-instruct
    maxModelLen: 4096
"""


def test_sharing_workspaces_share_a_gpu_and_exclusive_ones_do_not(tmp_path: Path) -> None:
    here = machine(nvml=FakeNVML(gpus=1))
    store = Store(tmp_path)
    with ExitStack() as supervisors:

        def holder(name: str, shared: bool) -> Record:
            supervisor = supervisors.enter_context(fake_supervisor(tmp_path, name))
            return Record(
                name=name,
                model="m",
                file="f",
                port=1,
                command=["true"],
                devices=["gpu-0"],
                shared=shared,
                supervisor_pid=supervisor.pid,
            )

        def start(name: str, strategy: str) -> None:
            file = tmp_path / f"{name}.yaml"
            file.write_text(SHARED.format(name=name, strategy=strategy), encoding="utf-8")
            ws = load_workspace(file)
            plan = plan_workspace(ws, target="local", local_profile=here.profile)
            assert plan.fits, plan.reason
            reserve(store, ws, plan, str(file), here=here)

        store.put(holder("sharer", shared=True))
        with pytest.raises(LocalError, match="held by other workspaces: gpu-0"):
            start("exclusive", "Exclusive")
        # Sharing with a sharer: allowed.
        start("timesliced", "TimeSlicing")
        second = store.get("timesliced")
        assert second is not None and second.devices == ["gpu-0"] and second.shared
        assert second.env == {"CUDA_VISIBLE_DEVICES": "GPU-00000000"}
        store.delete("sharer")
        store.put(holder("owner", shared=False))
        store.delete("timesliced")
        with pytest.raises(LocalError, match="held by other workspaces: gpu-0"):
            start("again", "TimeSlicing")
