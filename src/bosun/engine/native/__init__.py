"""The engine's decode step in C++ for CPUs (``decode.cpp``), built for this machine.

The source is compiled on first use with the machine's own instruction set (AVX-512 or
AVX2) and cached under the Bosun cache directory, keyed by the source, the compiler
flags, torch's version and the CPU's flags, so a machine never loads a build made for
another. Building takes about half a minute on two cores: ``make`` does it at install
(``python -m bosun.engine.native``), and an engine that starts without it builds it in the
background, running its steps through ATen until it is ready. Where there is no compiler
(or ``BOSUN_NATIVE=0``), the ATen path is all there is, and it gives the same tokens.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import hashlib
import logging
import os
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING

from bosun.engine.cpus import cpu_flags

if TYPE_CHECKING:
    import torch

__all__ = [
    "build_in_background",
    "cache_dir",
    "kernels",
    "last_error",
    "load",
    "module_name",
    "paged_decode",
]

log = logging.getLogger("bosun.engine")

SOURCE = Path(__file__).with_name("decode.cpp")
LDFLAGS = ["-fopenmp"]


def cflags() -> list[str]:
    """The compiler's flags: this machine's instruction set, or the one ``BOSUN_NATIVE_ARCH``
    names (``haswell``: AVX2 and FMA only; the benchmarks build each kind a CPU can run)."""
    arch = os.environ.get("BOSUN_NATIVE_ARCH") or "native"
    return ["-O3", f"-march={arch}", "-fopenmp"]


_lock = threading.Lock()
_module: ModuleType | None = None
_error: str | None = None
_building: threading.Thread | None = None


@functools.cache
def module_name() -> str:
    """The build's name: what it is built from and for, hashed."""
    import torch

    key = hashlib.sha256()
    for part in (SOURCE.read_bytes(), " ".join(cflags()).encode(), torch.__version__.encode()):
        key.update(part)
    key.update(" ".join(sorted(cpu_flags())).encode())
    return f"bosun_decode_{key.hexdigest()[:12]}"


def cache_dir() -> Path:
    """Where builds live: ``$BOSUN_CACHE_DIR/native``, else the user's cache directory."""
    configured = os.environ.get("BOSUN_CACHE_DIR")
    if configured:
        return Path(configured) / "native"
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "bosun" / "native"


def last_error() -> str | None:
    """Why the last build or load failed (None: it did not)."""
    return _error


@contextlib.contextmanager
def _builder(directory: Path, *, wait: bool) -> Iterator[bool]:
    """Yield whether this process may build or load in ``directory``, across processes.

    torch marks a build in progress with a ``lock`` file that it removes when done, and
    waits for that file to go away before it even loads a finished build. A build that
    was killed (Ctrl-C during ``make``, an OOM kill) leaves the file behind, and every
    later start waits on it forever. So builders also take an ``flock``, which the
    kernel releases when its holder dies. Whoever holds it knows that any ``lock`` file
    left is a dead build's, and removes it. Without ``wait``, this yields False at once
    while another process holds it.
    """
    with (directory / "bosun.lock").open("ab") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            yield False
            return
        try:
            stale = directory / "lock"
            if stale.exists():
                log.warning("removing %s, left by a build that was killed", stale)
                stale.unlink(missing_ok=True)
            yield True
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def load(build: bool = True) -> ModuleType | None:
    """The compiled module; built first when ``build`` and no build is cached. None when it
    is switched off, not built (``build=False``), or cannot be built (see
    :func:`last_error`)."""
    global _module, _error
    if _module is not None:
        return _module
    if os.environ.get("BOSUN_NATIVE") == "0":
        return None
    # A build under way holds the lock for half a minute: a step asking whether the module
    # is ready (build=False) does not wait for it.
    if not _lock.acquire(blocking=build):
        return None
    try:
        if _module is not None:
            return _module
        name = module_name()
        directory = cache_dir() / name
        if not build and not (directory / f"{name}.so").is_file():
            return None
        try:
            from torch.utils.cpp_extension import load as build_and_load

            directory.mkdir(parents=True, exist_ok=True)
            with _builder(directory, wait=build) as mine:
                if not mine:  # another process is building it: ATen until it is done
                    return None
                _module = build_and_load(
                    name=name,
                    sources=[str(SOURCE)],
                    extra_cflags=cflags(),
                    extra_ldflags=LDFLAGS,
                    build_directory=str(directory),
                    verbose=False,
                )
        except Exception as exc:  # no compiler, no ninja, a read-only cache: ATen serves
            _error = f"{type(exc).__name__}: {str(exc).strip().splitlines()[-1][:300]}"
            log.warning("the C++ decode step is not available (%s); decoding through ATen", _error)
            return None
        _error = None
        return _module
    finally:
        _lock.release()


def kernels() -> str:
    """What decodes on this machine, for logs and benchmarks: ``aten`` (no build yet),
    ``native-avx512`` or ``native-avx2`` (the build's vectors), and ``+amx-int8`` where wide
    batches multiply in int8 on AMX tiles (:func:`bosun.engine.quant.int8_batch`)."""
    from bosun.engine.quant import int8_batch

    module = load(build=False)
    if module is None:
        return "aten"
    name = {16: "native-avx512", 8: "native-avx2"}.get(int(module.lanes()), "native-scalar")
    return f"{name}+amx-int8" if module.int8_tiles() and int8_batch() else name


def paged_decode(
    q: torch.Tensor,
    cache_kv: torch.Tensor,
    block_tables: torch.Tensor,
    lengths: torch.Tensor,
    *,
    scale: float,
    softcap: float = 0.0,
    window: int = 0,
) -> torch.Tensor:
    """Attention of one new token per sequence over its cached context, on CPUs (float32),
    through the built module: :func:`bosun.engine.paged_attention.paged_decode`'s
    contract, without Triton. The caller checked that :func:`load` has the module."""
    module = load(build=False)
    if module is None:
        raise RuntimeError("the C++ module is not built")
    out: torch.Tensor = module.paged_decode(
        q, cache_kv, block_tables, lengths, scale, softcap, window
    )
    return out


def build_in_background() -> None:
    """Start building (once) if no build is cached; :func:`load` then finds it ready."""
    global _building
    if _module is not None or os.environ.get("BOSUN_NATIVE") == "0":
        return
    if _building is not None and _building.is_alive():
        return
    _building = threading.Thread(target=load, name="bosun-native-build", daemon=True)
    _building.start()


def main() -> int:
    """Build (or find) the module for this machine and say so; never fails the caller."""
    module = load()
    if module is None:
        off = os.environ.get("BOSUN_NATIVE") == "0"
        reason = "switched off (BOSUN_NATIVE=0)" if off else _error
        print(f"bosun: the C++ decode step is not built: {reason}", file=sys.stderr)
        return 0
    print(f"bosun: the C++ decode step is built: {cache_dir() / module_name()}")
    return 0
