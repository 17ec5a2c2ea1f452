"""What the CPUs of this process are: how many it may use, and what they can multiply.

How many: the ones its affinity mask allows, capped by its
cgroup's CPU quota (a pod's ``resources.limits.cpu``). ``os.cpu_count()`` and torch's own
default count the node's cores: in a pod limited to 2 CPUs on a 64-core node they would
start a team of dozens of threads against a quota of two, and every parallel region would
wait for threads the kernel has throttled.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

__all__ = ["ThreadTuner", "cgroup_cpu_limit", "cpu_flags", "keep_freed_memory", "usable_cpus"]


# glibc's mallopt parameters, and the sizes the engine sets them to.
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
MMAP_THRESHOLD = 64 << 20
TRIM_THRESHOLD = 256 << 20


def keep_freed_memory() -> bool:
    """Let glibc's malloc serve blocks up to 64 MiB from memory freed before, instead of
    mapping fresh pages for each: a step's activations (25 MB for SmolLM2's MLP over a
    2,048-token prefill) are allocated and freed every step, and faulting their pages
    in anew took half of such a step (988 ms against 660 ms). Freed memory up to 256 MiB
    stays with the process. False where the C library has no ``mallopt`` (not glibc)."""
    import ctypes
    import ctypes.util

    name = ctypes.util.find_library("c")
    if name is None:
        return False
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return bool(mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(
        mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD)
    )


def cpu_flags(cpuinfo: Path = Path("/proc/cpuinfo")) -> frozenset[str]:
    """The first CPU's feature flags (``avx2``, ``avx512f``, ``amx_bf16``...), empty where
    the kernel does not list them (not Linux, or not x86)."""
    try:
        for line in cpuinfo.read_text(encoding="utf-8").splitlines():
            if line.startswith("flags"):
                return frozenset(line.split(":", 1)[1].split())
    except OSError:
        pass
    return frozenset()


def _affinity() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not Linux
        return os.cpu_count() or 1


def _v2_quota(text: str) -> float | None:
    """cgroup v2's ``cpu.max``: ``"max 100000"`` (none) or ``"200000 100000"`` (2 CPUs)."""
    parts = text.split()
    if len(parts) != 2 or parts[0] == "max":
        return None
    quota, period = int(parts[0]), int(parts[1])
    return quota / period if quota > 0 and period > 0 else None


def _v1_quota(quota: str, period: str) -> float | None:
    """cgroup v1's ``cpu.cfs_quota_us`` (-1: none) over ``cpu.cfs_period_us``."""
    q, p = int(quota), int(period)
    return q / p if q > 0 and p > 0 else None


def _read(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8").strip()
    except OSError:
        return None


def cgroup_cpu_limit(root: Path = Path("/")) -> float | None:
    """The CPU quota of this process's cgroup and its ancestors (the tightest), in CPUs;
    None when there is none. ``root`` stands for ``/`` (tests give a fake tree)."""
    membership = _read(root / "proc/self/cgroup") or ""
    limits: list[float] = []
    for line in membership.splitlines():
        hierarchy, _, rest = line.partition(":")
        controllers, _, path = rest.partition(":")
        if hierarchy == "0" and controllers == "":  # cgroup v2, unified
            base, name = root / "sys/fs/cgroup", None
        elif "cpu" in controllers.split(","):
            base = root / "sys/fs/cgroup" / controllers
            if not base.is_dir():
                base = root / "sys/fs/cgroup/cpu"
            name = "v1"
        else:
            continue
        # The cgroup's directory, then each parent up to the mount (a container sees its
        # own cgroup at the mount's root: the walk then reads just that).
        parts = [p for p in path.split("/") if p]
        for depth in range(len(parts), -1, -1):
            here = base.joinpath(*parts[:depth])
            if name is None:
                text = _read(here / "cpu.max")
                limit = _v2_quota(text) if text else None
            else:
                quota, period = _read(here / "cpu.cfs_quota_us"), _read(here / "cpu.cfs_period_us")
                limit = _v1_quota(quota, period) if quota and period else None
            if limit is not None:
                limits.append(limit)
    return min(limits) if limits else None


def usable_cpus(root: Path = Path("/")) -> int:
    """Whole CPUs this process can keep busy: its affinity mask, capped by the cgroup
    quota rounded up (the kernel throttles a cgroup's threads together, so a team of two
    on 1.5 CPUs pauses as one rather than waiting on a descheduled member), at least 1."""
    cpus = _affinity()
    limit = cgroup_cpu_limit(root)
    if limit is not None:
        cpus = min(cpus, max(1, math.ceil(limit)))
    return max(1, cpus)


class ThreadTuner:
    """The size of the thread team for decode steps, chosen by timing them.

    Every parallel loop of a step ends at a barrier: when another process takes one of
    the CPUs, a team member descheduled for a whole timeslice holds every barrier, and a
    two-thread step can run twenty times slower than a one-thread step on the CPU left
    (measured: 7 against 68 tokens/s). So the tuner keeps the median step time of the
    team size in use and, every ``every`` steps or as soon as that median doubles over the
    best it has seen, times ``probe`` steps at the sizes beside it (half, double; a size
    three times slower at its first step is dropped there) and keeps the fastest. On a quiet
    machine that costs the probes (about 1%); on a busy one it leaves the cliff within a
    few steps.

    Steps are compared only with steps of the same shape (``shape``: the number of
    sequences in the step, say): a step of 32 sequences is slower than one of 4 at any
    team size, and a probe counts only the steps of the shape it started with.
    """

    def __init__(self, most: int, every: int = 512, probe: int = 6) -> None:
        self.most = max(1, most)
        self.size = self.most
        self.every, self.probe = every, probe
        self._times: dict[tuple[int, int], list[float]] = {}  # (shape, size): last times
        self._best: dict[tuple[int, int], float] = {}
        self._queue: list[int] = []  # sizes still to probe, in order
        self._probing = 0  # the shape being probed
        self._kept: list[float] = []  # the size in use's last times before the probe
        self._steps = 0

    def _candidates(self) -> list[int]:
        around = {max(1, self.size // 2), self.size, min(self.most, self.size * 2)}
        return sorted(around)

    def next_size(self, shape: int = 1) -> int:
        """The team size for the coming step, of ``shape``."""
        return self._queue[0] if self._queue and shape == self._probing else self.size

    def record(self, seconds: float, shape: int = 1) -> None:
        """The step just run (of ``shape``, at :meth:`next_size` threads) took ``seconds``."""
        size = self.next_size(shape)
        times = self._times.setdefault((shape, size), [])
        times.append(seconds)
        del times[: -self.probe]
        self._steps += 1
        if self._queue:
            if shape != self._probing:
                return
            # A size three times slower than the one in use is done with at its first step:
            # probing a team into a busy machine's cliff costs one step, not ``probe``.
            hopeless = size != self.size and seconds > 3 * self._median(self._kept)
            if len(times) >= self.probe or hopeless:
                self._queue.pop(0)
                if not self._queue:  # every candidate timed: keep the fastest
                    ranked = {
                        c: self._median(self._times.get((shape, c), [])) for c in self._candidates()
                    }
                    self.size = min(ranked, key=lambda c: ranked[c])
            return
        median = self._median(times)
        best = self._best.get((shape, size), median)
        self._best[(shape, size)] = min(best, median)
        slower = len(times) >= self.probe and median > 2 * best
        if self.most > 1 and (slower or self._steps % self.every == 0):
            self._kept = list(times)  # the size in use, as it ran up to now
            self._probing = shape
            for candidate in self._candidates():
                self._times[(shape, candidate)] = []
            self._queue = self._candidates()

    @staticmethod
    def _median(times: list[float]) -> float:
        ordered = sorted(times)
        return ordered[len(ordered) // 2] if ordered else float("inf")
