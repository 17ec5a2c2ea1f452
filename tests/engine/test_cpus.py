"""CPUs the engine sizes its thread team from: affinity, capped by the cgroup's quota."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from bosun.engine import cpus


def tree(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text + "\n", encoding="utf-8")
    return root


@pytest.fixture
def eight(monkeypatch: pytest.MonkeyPatch) -> None:
    """A node of 8 CPUs, all in this process's affinity mask."""
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(8)))


def test_a_pod_limited_to_two_cpus_gets_two_threads(tmp_path: Path, eight: None) -> None:
    root = tree(tmp_path, {"proc/self/cgroup": "0::/", "sys/fs/cgroup/cpu.max": "200000 100000"})
    assert cpus.cgroup_cpu_limit(root) == 2.0
    assert cpus.usable_cpus(root) == 2


def test_no_quota_leaves_the_affinity_mask(tmp_path: Path, eight: None) -> None:
    root = tree(tmp_path, {"proc/self/cgroup": "0::/", "sys/fs/cgroup/cpu.max": "max 100000"})
    assert cpus.cgroup_cpu_limit(root) is None
    assert cpus.usable_cpus(root) == 8


def test_the_tightest_quota_on_the_way_up_wins(tmp_path: Path, eight: None) -> None:
    root = tree(
        tmp_path,
        {
            "proc/self/cgroup": "0::/kubepods/pod1/ctr",
            "sys/fs/cgroup/kubepods/cpu.max": "max 100000",
            "sys/fs/cgroup/kubepods/pod1/cpu.max": "150000 100000",
            "sys/fs/cgroup/kubepods/pod1/ctr/cpu.max": "400000 100000",
        },
    )
    assert cpus.cgroup_cpu_limit(root) == 1.5
    assert cpus.usable_cpus(root) == 2  # rounded up


def test_cgroup_v1_quota(tmp_path: Path, eight: None) -> None:
    root = tree(
        tmp_path,
        {
            "proc/self/cgroup": "4:memory:/x\n3:cpu,cpuacct:/docker/abc",
            "sys/fs/cgroup/cpu,cpuacct/docker/abc/cpu.cfs_quota_us": "300000",
            "sys/fs/cgroup/cpu,cpuacct/docker/abc/cpu.cfs_period_us": "100000",
        },
    )
    assert cpus.usable_cpus(root) == 3
    unlimited = tree(
        tmp_path / "u",
        {
            "proc/self/cgroup": "3:cpu:/",
            "sys/fs/cgroup/cpu/cpu.cfs_quota_us": "-1",
            "sys/fs/cgroup/cpu/cpu.cfs_period_us": "100000",
        },
    )
    assert cpus.cgroup_cpu_limit(unlimited) is None


def test_affinity_caps_a_looser_quota(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {2, 3})
    root = tree(tmp_path, {"proc/self/cgroup": "0::/", "sys/fs/cgroup/cpu.max": "800000 100000"})
    assert cpus.usable_cpus(root) == 2


def test_a_tiny_quota_still_runs_one_thread(tmp_path: Path, eight: None) -> None:
    root = tree(tmp_path, {"proc/self/cgroup": "0::/", "sys/fs/cgroup/cpu.max": "10000 100000"})
    assert cpus.usable_cpus(root) == 1


def test_no_cgroup_files_at_all(tmp_path: Path, eight: None) -> None:
    assert cpus.cgroup_cpu_limit(tmp_path) is None
    assert cpus.usable_cpus(tmp_path) == 8


def test_this_machine() -> None:
    """Whatever runs the tests: at least one CPU, at most what the affinity mask lists."""
    assert 1 <= cpus.usable_cpus() <= len(os.sched_getaffinity(0))


# Step times (ms) of a 2-CPU machine, measured: quiet, and with one busy process beside.
QUIET = {1: 14.6, 2: 7.1}
BUSY = {1: 14.7, 2: 135.0}


def run(tuner: cpus.ThreadTuner, phases: list[tuple[int, dict[int, float]]]) -> list[int]:
    """The team size of every step through ``phases`` of (steps, times by size)."""
    sizes = []
    for steps, times in phases:
        for _ in range(steps):
            size = tuner.next_size()
            sizes.append(size)
            tuner.record(times[size] / 1000)
    return sizes


def test_a_busy_machine_drops_to_the_team_that_is_faster_there() -> None:
    tuner = cpus.ThreadTuner(2)
    sizes = run(tuner, [(600, QUIET), (1000, BUSY), (1200, QUIET)])
    quiet, busy, after = sizes[:600], sizes[600:1600], sizes[1600:]
    assert quiet.count(2) > 0.98 * len(quiet)  # probes cost under 2% of the steps
    assert busy[12:].count(1) > 0.98 * len(busy[12:])  # out of the cliff within 12 steps
    assert busy.count(2) < 20  # each later probe of 2 threads stops at its first step
    assert after[600:].count(2) > 0.98 * len(after[600:])  # back once the machine is quiet


def test_time_lost_to_probing_a_quiet_machine_is_small() -> None:
    tuner = cpus.ThreadTuner(2)
    sizes = run(tuner, [(5000, QUIET)])
    spent = sum(QUIET[s] for s in sizes)
    assert spent < 1.02 * 5000 * QUIET[2]


def test_one_cpu_never_probes() -> None:
    tuner = cpus.ThreadTuner(1)
    assert set(run(tuner, [(1000, {1: 5.0})])) == {1}


def test_a_larger_team_halves_step_by_step() -> None:
    """Sixteen CPUs, eight of them busy: the tuner walks down to the size that is fastest."""
    times = {16: 90.0, 8: 9.0, 4: 12.0, 2: 20.0, 1: 38.0}
    tuner = cpus.ThreadTuner(16)
    sizes = run(tuner, [(3000, times)])
    assert sizes[-500:].count(8) > 0.95 * 500


def test_steps_of_other_shapes_do_not_mislead_it() -> None:
    """Steps of 32 sequences take longer than steps of 1 at any team size: mixed in, they
    must not look like a machine gone busy, nor count in a probe of the other shape."""
    tuner = cpus.ThreadTuner(2)
    times = {1: {1: 14.6, 2: 7.1}, 32: {1: 240.0, 2: 140.0}}
    sizes = []
    for step in range(3000):
        shape = 32 if step % 3 == 0 else 1
        size = tuner.next_size(shape)
        sizes.append(size)
        tuner.record(times[shape][size] / 1000, shape)
    assert sizes.count(2) > 0.98 * len(sizes)


def test_cpu_flags_come_from_the_first_cpu_and_are_empty_where_unlisted(tmp_path: Path) -> None:
    info = tmp_path / "cpuinfo"
    info.write_text(
        "processor\t: 0\nflags\t\t: fpu avx2 amx_bf16\n\nprocessor\t: 1\nflags\t\t: fpu\n",
        encoding="utf-8",
    )
    assert cpus.cpu_flags(info) == {"fpu", "avx2", "amx_bf16"}
    info.write_text("processor\t: 0\nFeatures\t: fp asimd\n", encoding="utf-8")  # an Arm CPU
    assert cpus.cpu_flags(info) == frozenset()
    assert cpus.cpu_flags(tmp_path / "missing") == frozenset()


FAULTS = """
import resource, sys, torch
from bosun.engine import cpus

def faults():
    start = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(10):  # a step's 25 MB activation, allocated, written and freed
        torch.empty(2048, 3072).fill_(1.0)
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - start

before = faults()
assert cpus.keep_freed_memory()
faults()  # the first one may still take fresh pages
print(before, faults())
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt is Linux's")
def test_freed_activations_are_reused_not_faulted_in_again() -> None:
    """Without the setting each 25 MB block maps fresh pages (some 5,000 page faults);
    with it the freed block is reused."""
    out = subprocess.run(
        [sys.executable, "-c", FAULTS], capture_output=True, text=True, check=True, timeout=120
    )
    before, after = map(int, out.stdout.split())
    assert before > 10 * 3000
    assert after < 1000
