"""`bosun up`, `ps`, `down` and `logs`: local workspaces as supervised processes."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from bosun.api import BosunError, Workspace
from bosun.api.conditions import Condition, ConditionType, set_condition
from bosun.catalog import Plan
from bosun.local.devices import Machine, allocate
from bosun.local.process import (
    HOME_ENV,
    SUPERVISOR_MODULE,
    WORKSPACE_ENV,
    Found,
    Proc,
    alive,
    running,
    signal_if_ours,
    start_time,
)
from bosun.local.state import DamagedRecordError, Record, Store, boot_id
from bosun.local.supervisor import tail

__all__ = [
    "GATEWAY",
    "IDLE_NOTE",
    "LocalError",
    "Shown",
    "adopt",
    "down",
    "free_port",
    "launch",
    "logs",
    "make_room",
    "port_free",
    "reserve",
    "serve_command",
    "serve_model",
    "show",
    "sleep",
    "status",
    "up",
    "wake",
]

# The local gateway's row in the state store (bosun.local.gateway): no workspace takes it.
GATEWAY = "gateway"
IDLE_NOTE = "scaled to zero: its next request through the gateway starts it"


class LocalError(BosunError):
    """A local operation that cannot be done, said plainly (the CLI exits 2)."""


def _port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def port_free(port: int) -> bool:
    """Nothing listens on ``port`` on loopback. Connections of a server that stopped a
    moment ago (TIME_WAIT) do not count: servers bind with SO_REUSEADDR too."""
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


@dataclass(frozen=True)
class Shown:
    """A workspace as `bosun ps` shows it: the stored record checked against reality."""

    record: Record
    state: str
    supervised: bool
    note: str  # why the shown state differs from the stored one

    @property
    def uptime_s(self) -> float:
        """Seconds since the server last started, while it is Ready; else 0."""
        return round(time.time() - self.record.started, 1) if self.state == "Ready" else 0.0

    def to_json(self) -> dict[str, object]:
        r = self.record
        return {
            "name": r.name,
            "model": r.model,
            "state": self.state,
            "endpoint": r.endpoint,
            "port": r.port,
            "pid": r.pid,
            "supervisor_pid": r.supervisor_pid,
            "supervised": self.supervised,
            "restarts": r.restarts,
            "devices": r.devices,
            "uptime_s": self.uptime_s,
            "kind": r.kind,
            "file": r.file,
            "note": self.note,
            "message": r.message,
        }


def _supervisor_argv(record: Record) -> tuple[str, ...]:
    return (SUPERVISOR_MODULE, record.name)


def _supervised(record: Record) -> bool:
    """Its supervisor runs: the recorded pid, start time and command line."""
    return alive(record.supervisor_pid, record.supervisor_start, _supervisor_argv(record))


def _serving(record: Record) -> bool:
    """Its server (or job) runs: the recorded pid, start time and command line."""
    return alive(record.pid, record.pid_start, record.command)


def show(record: Record) -> Shown:
    """Check a stored record against the processes and the port: a workspace whose server
    is gone or whose port is closed is never shown as Ready."""
    state, note = record.state, ""
    if record.state in ("Failed", "Stopped", "Succeeded"):
        return Shown(record, state, _supervised(record), note)
    if record.state == "Idle":
        return Shown(record, state, False, IDLE_NOTE)
    if record.boot and record.boot != boot_id():
        return Shown(record, "Stopped", False, "the machine restarted since (stale entry)")
    supervised = _supervised(record)
    server = _serving(record)
    if record.kind == "job":
        if not supervised and not server:
            state, note = "Failed", "its supervisor and the job are gone: bosun up resumes it"
        return Shown(record, state, supervised, note)
    if not supervised:
        if server and _port_open(record.port):
            note = "its supervisor is gone: a crash will not be restarted (bosun down, up)"
            state = "Ready" if record.state == "Ready" else record.state
        else:
            state, note = "Stopped", "its supervisor and server are gone (stale entry)"
    elif record.state == "Ready" and not (server and _port_open(record.port)):
        state, note = "Restarting", "the server is gone; its supervisor restarts it"
    return Shown(record, state, supervised, note)


def serve_model(ws: Workspace, plan: Plan) -> str:
    """What `bosun serve --model` gets: a preset by its name (its weights may ship in a
    package), any other model by what the plan loads (a path, a Hugging Face id)."""
    workload = ws.spec.inference or ws.spec.tuning
    return plan.model if workload is not None and workload.preset else plan.model_ref


def serve_command(ws: Workspace, plan: Plan, port: int, responses: Path | None = None) -> list[str]:
    """The `bosun serve` command line that runs ``plan`` on this machine. Context and
    concurrency are the plan's, which sized the KV cache for exactly them. ``responses``:
    where the Responses API keeps stored responses (beside the local state)."""
    command = [sys.executable, "-m", "bosun.cli.main", "serve", "--model", serve_model(ws, plan)]
    command += ["--served-model-name", plan.model, "--port", str(port)]
    if responses is not None:
        command += ["--responses-store", str(responses)]
    command += ["--max-model-len", str(plan.max_model_len)]
    command += ["--max-concurrency", str(max(plan.concurrency, 1))]
    command += ["--quantization", plan.quantization]  # what the plan sized the memory for
    if plan.spec is not None and plan.spec.tool_parser:
        command += ["--tool-call-parser", plan.spec.tool_parser]
    if plan.accelerator.is_gpu:
        command += ["--device", "cuda"]
    for adapter in ws.spec.inference.adapters if ws.spec.inference else []:
        path = adapter.source.uri.removeprefix("file://")
        command += ["--adapter", f"{adapter.name}={path}:{adapter.strength}"]
    return command


def _check_local_adapters(ws: Workspace, file: str) -> None:
    """Adapters on one machine are local directories (a trained one: its output.uri)."""
    for i, adapter in enumerate(ws.spec.inference.adapters if ws.spec.inference else []):
        if not adapter.source.uri.startswith("file://"):
            raise LocalError(
                f"{file}: spec.inference.adapters[{i}].source.uri: {adapter.source.uri} cannot "
                "be read on one machine; give file:///path/to/adapter"
            )


def _check_local_tuning(ws: Workspace, file: str) -> None:
    """Volumes are a cluster's; here the data and the adapter are paths or URLs."""
    tuning = ws.spec.tuning
    assert tuning is not None
    if tuning.input.volume is not None:
        raise LocalError(
            f"{file}: spec.tuning.input.volume is a cluster volume; on one machine give "
            "input.uris (file:///path/data.jsonl, https://...)"
        )
    if tuning.output.uri is None or not tuning.output.uri.startswith("file://"):
        raise LocalError(
            f"{file}: spec.tuning.output: on one machine the adapter goes to a local "
            "directory: output.uri: file:///path/to/adapter"
        )
    for uri in tuning.input.uris:
        if uri.startswith(("pvc://", "hf://")):
            raise LocalError(
                f"{file}: spec.tuning.input.uris: {uri} cannot be read on one machine; "
                "give file:// paths or http(s) URLs"
            )


def tune_command(store: Store, ws: Workspace, plan: Plan, name: str) -> list[str]:
    """The `bosun tune` command line for a fine-tuning Workspace, its settings written to
    ``jobs/NAME/tuning.yaml`` in the state directory (the file a cluster's Job mounts)."""
    import yaml

    from bosun.render.tuning import tuning_config

    settings = {**tuning_config(ws, plan), "model": serve_model(ws, plan)}
    path = store.root / "jobs" / name / "tuning.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(settings, sort_keys=False), encoding="utf-8")
    command = [sys.executable, "-m", "bosun.cli.main", "tune", "--config", str(path)]
    if plan.accelerator.name != "cpu":
        command += ["--device", "cuda"]
    return command


def up(
    store: Store,
    ws: Workspace,
    plan: Plan,
    file: str,
    name: str | None = None,
    port: int | None = None,
    wait: float = 300.0,
    on_wait: Callable[[str], None] | None = None,
    here: Machine | None = None,
) -> Shown:
    """Start a supervised server for ``ws`` and wait until it is Ready (or Failed).

    ``here`` is the machine the plan was made for (default: a CPU); its GPUs are handed
    out with the DRA allocator, never one another live workspace holds."""
    record = reserve(store, ws, plan, file, name, port, here)
    if record.state == "Idle":
        return show(record)
    return launch(store, record.name, wait, on_wait)


def reserve(
    store: Store,
    ws: Workspace,
    plan: Plan,
    file: str,
    name: str | None = None,
    port: int | None = None,
    here: Machine | None = None,
) -> Record:
    """Check that ``ws`` can run here, choose its port and devices, and store it as
    Starting; nothing is started yet."""
    name = name or ws.metadata.name
    if name == GATEWAY:
        raise LocalError(
            f"{GATEWAY!r} is the local gateway's name (bosun ps): --name another for this one"
        )
    job = plan.workload == "tuning"
    if job:
        _check_local_tuning(ws, file)
    _check_local_adapters(ws, file)
    if not plan.fits:
        raise LocalError(f"{name}: the model does not fit this machine: {plan.reason}")
    make_room(store, name)
    if job and port is not None:
        raise LocalError("--port: a fine-tuning Workspace serves nothing; leave it out")
    if port is not None and not port_free(port):
        raise LocalError(f"--port {port} is taken on 127.0.0.1: choose another, or leave it out")
    here = here or Machine(None, plan.accelerator)
    chosen = 0 if job else port or free_port()

    # A Workspace that asks to share (time-slicing, MPS) may get GPUs that other sharing
    # workspaces hold; an exclusive one only GPUs that nobody holds.
    shared = plan.sharing.value != "Exclusive"

    def build(others: list[Record]) -> Record:
        held = {
            device
            for other in others
            if show(other).state not in ("Stopped", "Failed", "Succeeded")
            and not (shared and other.shared)
            for device in other.devices
            if device != "cpu"
        }
        devices = allocate(ws, plan, here, held)
        if devices is None:
            raise LocalError(
                f"{name}: no free {plan.accelerator.name} for it on this machine "
                f"(held by other workspaces: {', '.join(sorted(held)) or 'none'}; bosun ps)"
            )
        env = {}
        if here.slice is not None and devices != ["cpu"]:
            env["CUDA_VISIBLE_DEVICES"] = ",".join(here.uuid(d) for d in devices)
        return Record(
            name=name,
            model=plan.model,
            file=file,
            port=chosen,
            command=(
                tune_command(store, ws, plan, name)
                if job
                else serve_command(ws, plan, chosen, store.root / "responses" / f"{name}.db")
            ),
            kind="job" if job else "server",
            devices=devices,
            env=env,
            workspace=ws.model_dump(mode="json", by_alias=True, exclude_none=True),
            shared=shared,
            # Scaled to zero until its first request: the gateway starts it (wake).
            state="Idle" if ws.spec.resource.scales_to_zero and not job else "Starting",
        )

    # Devices are chosen and the row stored in one transaction: two `bosun up` at the
    # same instant cannot take the same GPU.
    record = store.insert_new(name, build)
    if record is None:
        raise LocalError(f"{name} was just started from another terminal")
    return record


def make_room(store: Store, name: str) -> None:
    """Drop a finished or stale entry named ``name``; a live one is refused, naming it."""
    existing = store.get(name)
    if existing is None:
        return
    shown = show(existing)
    if shown.state in ("Stopped", "Failed", "Succeeded"):
        store.delete(name)  # a finished or stale entry: replace it
    else:
        raise LocalError(
            f"{name} is already {shown.state.lower()} at {existing.endpoint} "
            f"(bosun down {name} first, or --name for a second one)"
        )


def _start_supervisor(store: Store, name: str, fresh: bool) -> subprocess.Popen[bytes]:
    """Start the supervisor of a stored workspace, its output appended to the workspace's
    log (emptied first when ``fresh``)."""
    log = store.log_path(name)
    if fresh:
        log.write_bytes(b"")
    env = {**os.environ, HOME_ENV: str(store.root)}
    env.pop(WORKSPACE_ENV, None)  # the gateway's own, when the gateway wakes a workspace
    with log.open("ab") as out:
        supervisor = subprocess.Popen(
            [sys.executable, "-m", SUPERVISOR_MODULE, name],
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,  # survives this terminal
            env=env,
        )
    store.update(name, supervisor_pid=supervisor.pid, supervisor_start=start_time(supervisor.pid))
    return supervisor


def launch(
    store: Store, name: str, wait: float, on_wait: Callable[[str], None] | None = None
) -> Shown:
    """Start the supervisor of a reserved workspace and wait for Ready or Failed."""
    supervisor = _start_supervisor(store, name, fresh=True)
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        current = store.get(name)
        if current is None:
            raise LocalError(f"{name} was removed while starting (bosun down from elsewhere?)")
        if current.state in ("Ready", "Failed", "Running", "Succeeded"):
            return show(current)  # a job is up once it runs: bosun ps follows it
        if supervisor.poll() is not None and current.state != "Ready":
            lines = "\n".join(tail(store.log_path(name), 20))
            store.update(name, state="Failed", message=f"the supervisor exited:\n{lines}")
            break
        if on_wait is not None:
            on_wait(current.state)
        time.sleep(0.2)
    current = store.get(name)
    assert current is not None
    return show(current)


def wake(store: Store, name: str) -> bool:
    """Start a workspace scaled to zero (Idle): its supervisor starts the server, and the
    row goes Starting, then Ready. False if it is not Idle (another request woke it
    first, or it is gone); the check and the change are one transaction."""
    woken = store.update(
        name, when=lambda r: r.state == "Idle", state="Starting", started=time.time(), message=""
    )
    if woken is None:
        return False
    _start_supervisor(store, name, fresh=False)
    return True


def sleep(store: Store, name: str, grace: float = 40.0) -> bool:
    """Scale a workspace to zero: stop its supervisor and server (requests in flight get
    ``grace`` seconds to finish) and keep its row, Idle. False if it is not served."""
    record = store.get(name)
    if record is None or record.kind != "server" or record.state in ("Idle", "Failed"):
        return False
    _stop_processes(store, record, grace)
    store.update(name, state="Idle", pid=None, pid_start=None, message="")
    return True


def _stop_processes(store: Store, record: Record, grace: float) -> Record:
    """Stop a workspace's supervisor (which stops its server), then the server itself if
    it still runs; the row as it stands after."""
    name = record.name
    if signal_if_ours(
        record.supervisor_pid, record.supervisor_start, signal.SIGTERM, _supervisor_argv(record)
    ):
        deadline = time.monotonic() + grace
        while _supervised(record) and time.monotonic() < deadline:
            time.sleep(0.1)
    try:
        current = store.get(name) or record
    except DamagedRecordError:
        current = record
    # Unsupervised, or the supervisor did not get to it.
    if signal_if_ours(current.pid, current.pid_start, signal.SIGTERM, current.command):
        deadline = time.monotonic() + grace
        while _serving(current) and time.monotonic() < deadline:
            time.sleep(0.1)
        signal_if_ours(current.pid, current.pid_start, signal.SIGKILL, current.command)
    return current


def down(store: Store, name: str, grace: float = 40.0) -> Record:
    """Stop a workspace (its supervisor stops the server) and forget it. A workspace whose
    stored row is damaged, or that runs without a row (the store was replaced), is found
    by its processes in the process table and stopped all the same."""
    try:
        record = store.get(name)
    except DamagedRecordError:
        record = None
    found = running(store.root).get(name)
    if record is None:
        if found is None and name not in store.scan()[1]:
            raise LocalError(f"no local workspace named {name!r} (bosun ps lists them)")
        record = _from_processes(name, found or Found())
    current = _stop_processes(store, record, grace)
    store.delete(name)
    return replace(current, state="Stopped", pid=None)


def _option(argv: list[str], flag: str) -> str | None:
    return argv[argv.index(flag) + 1] if flag in argv[:-1] else None


def _kind(argv: list[str]) -> str:
    """A record's kind from its process's command line (``... bosun.cli.main rag serve``)."""
    words = argv[argv.index("bosun.cli.main") + 1 :] if "bosun.cli.main" in argv else argv
    if words[:2] == ["rag", "serve"]:
        return "rag"
    return "server" if "serve" in words else "gateway" if "gateway" in words else "job"


def _from_processes(name: str, found: Found) -> Record:
    """A row rebuilt from what runs: the server's own command line says its model and
    port; pids, start times and command lines are the ones checked before any signal."""
    server, supervisor = found.server, found.supervisor
    argv = server.argv if server else []
    port = _option(argv, "--port")
    record = Record(
        name=name,
        model=_option(argv, "--served-model-name") or _option(argv, "--model") or "",
        file="",
        port=int(port) if port and port.isdigit() else 0,
        command=argv,
        kind=_kind(argv),
        state="Ready" if port and port.isdigit() and _port_open(int(port)) else "Starting",
        message="re-adopted from the process table: the state store had lost it",
    )
    if server is not None:
        record = replace(record, pid=server.pid, pid_start=server.started)
    if supervisor is not None:
        record = replace(record, supervisor_pid=supervisor.pid, supervisor_start=supervisor.started)
    return record


def adopt(store: Store) -> list[str]:
    """Rows for workspaces that run for this state directory but that the store has no
    row for (it was damaged and set aside, or replaced): a running Bosun server is never
    lost track of. Damaged rows are left for `bosun down`. Returns the names adopted."""
    records, damaged = store.scan()
    known = {r.name for r in records} | set(damaged)
    adopted = []
    for name, found in sorted(running(store.root).items()):
        if name not in known:
            store.put(_from_processes(name, found))
            adopted.append(name)
    return adopted


def untracked(store: Store) -> dict[str, str]:
    """{name: why} for what `bosun ps` cannot list from the store: damaged rows, and
    processes running for this state directory without a row."""
    records, damaged = store.scan()
    known = {r.name for r in records} | set(damaged)
    out = {name: f"its stored row is damaged ({why})" for name, why in damaged.items()}
    for name, found in running(store.root).items():
        if name not in known:
            pid = (found.supervisor or found.server or Proc(0, None, [])).pid
            out[name] = f"it runs (pid {pid}), but the state store has no row for it"
    return out


def logs(store: Store, name: str, lines: int) -> list[str]:
    if store.get(name) is None:
        raise LocalError(f"no local workspace named {name!r} (bosun ps lists them)")
    return tail(store.log_path(name), lines)


_REASONS: dict[str, tuple[Literal["True", "False"], str, str]] = {
    "Ready": ("True", "Serving", "the server answers on {endpoint}"),
    "Running": ("False", "Running", "the fine-tuning job runs (bosun logs shows its loss)"),
    "Succeeded": ("True", "Succeeded", "the adapter is written"),
    "Starting": ("False", "Starting", "the server is loading the model"),
    "Restarting": ("False", "Restarting", "the server exited; its supervisor restarts it"),
    "Failed": ("False", "Failed", "{message}"),
    "Stopped": ("False", "Stopped", "{note}"),
    "Idle": ("False", "ScaledToZero", "{note}"),
}


def status(shown: Shown) -> dict[str, Any]:
    """The Workspace as it was started, with ``status`` in the shape the operator writes
    (``ResourceReady``, ``InferenceReady``, ``WorkspaceSucceeded`` conditions)."""
    r = shown.record
    conditions: list[Condition] = []
    when = datetime.fromtimestamp(r.started, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    devices = ", ".join(r.devices)
    conditions = set_condition(
        conditions,
        ConditionType.RESOURCE_READY,
        "True",
        "LocalDevices",
        f"this machine: {devices}",
        at=when,
    )
    flag, reason, text = _REASONS[shown.state]
    message = text.format(endpoint=r.endpoint, message=r.message, note=shown.note)
    if shown.note and shown.state == "Ready":
        message += f" ({shown.note})"
    kinds = [ConditionType.INFERENCE_READY, ConditionType.WORKSPACE_SUCCEEDED]
    if r.kind == "job":  # as the operator reports a tuning Job
        started: Literal["True", "False"] = (
            "True" if shown.state in ("Running", "Succeeded") else "False"
        )
        conditions = set_condition(
            conditions, ConditionType.JOB_STARTED, started, reason, message[-32000:], at=when
        )
        kinds = [ConditionType.JOB_SUCCEEDED, ConditionType.WORKSPACE_SUCCEEDED]
    for kind in kinds:
        conditions = set_condition(conditions, kind, flag, reason, message[-32000:], at=when)
    document = dict(r.workspace) or {
        "apiVersion": "bosun.dev/v1alpha1",
        "kind": "Workspace",
        "metadata": {"name": r.name},
    }
    document["status"] = {
        "conditions": [c.model_dump(by_alias=True, exclude_none=True) for c in conditions],
        "endpoint": r.endpoint,
        "allocatedDevices": r.devices,
        "state": shown.state,
        "replicas": 1 if shown.state == "Ready" else 0,
    }
    return document
