"""`bosun up`, `ps`, `logs` and `down`: Workspaces served on this machine."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from bosun.cli.output import Format, console, dump, fail, warn

if TYPE_CHECKING:
    from bosun.api import Workspace
    from bosun.catalog import Plan
    from bosun.local.devices import Machine
    from bosun.local.runtime import Shown
    from bosun.local.state import Record, Store

__all__ = ["register"]


def _store() -> Store:
    from bosun.local.state import Store

    try:
        store = Store()
    except OSError as exc:
        fail(f"$BOSUN_HOME: cannot use the state directory: {exc}")
    if store.recovered is not None:
        warn(f"the state file was unreadable; kept it as {store.recovered} and started anew")
    return store


def _local_plan(file: Path) -> tuple[Workspace, Plan, Machine]:
    from bosun.api import BosunError, load_workspace
    from bosun.catalog import plan_workspace
    from bosun.cli.environment import allowed_hosts
    from bosun.local.devices import machine

    try:
        ws = load_workspace(file, allowed_hosts())
        here = machine()
        plan = plan_workspace(ws, target="local", local_profile=here.profile)
    except BosunError as exc:
        fail(str(exc))
    for message in plan.warnings:
        warn(message)
    return ws, plan, here


def up(
    file: Annotated[Path, typer.Argument(help="A Workspace YAML file.")],
    name: Annotated[str | None, typer.Option(help="Local name (default: metadata.name).")] = None,
    port: Annotated[
        int | None, typer.Option(min=1, max=65535, help="Port (default: a free one).")
    ] = None,
    foreground: Annotated[
        bool, typer.Option("--foreground", help="Stay attached, print the log; Ctrl-C stops it.")
    ] = False,
) -> None:
    """Serve a Workspace (or a RAGEngine) on this machine: plan it, start a supervised
    server, wait until it answers, and print how to use it."""
    from bosun.cli.prepare import prepare_model
    from bosun.local.runtime import serve_model
    from bosun.local.runtime import up as start

    if _kind_of(file) == "RAGEngine":
        _up_rag(file, name, port, foreground)
        return
    ws, plan, here = _local_plan(file)
    if plan.workload == "inference" and not plan.fits:
        fail(f"{ws.metadata.name} does not fit this machine: {plan.reason}")
    store = _store()
    if plan.workload == "inference":  # a model that cannot load fails here, not in a loop
        prepare_model(serve_model(ws, plan))
    else:  # bad data or settings fail here, not minutes later in the job's log
        _check_tuning(ws, file)
    began = time.monotonic()
    shown = _started(
        lambda on_wait: start(
            store, ws, plan, str(file), name=name, port=port, on_wait=on_wait, here=here
        )
    )
    record = shown.record
    if record.kind == "job":
        _job_started(store, shown, foreground)
        return
    if shown.state not in ("Ready", "Idle"):
        fail(f"{record.name} did not start: {record.message or shown.note}", code=1)
    gateway = _gateway(store)
    model = record.model
    endpoint = gateway.endpoint if gateway is not None else record.endpoint
    if shown.state == "Idle":
        resource = ws.spec.resource
        headline = (
            f"[green]{record.name} is Idle[/green]: scaled to zero, it starts on its first "
            f"request to {endpoint} (model {model}) and stops after "
            f"{resource.idle_timeout} s without one"
        )
    else:
        headline = (
            f"[green]{record.name} is Ready[/green] in {time.monotonic() - began:.1f} s: "
            f"{endpoint} (model {model})"
        )
    if gateway is not None:
        headline += (
            f"\n  through the gateway, with every local model; the server alone: {record.endpoint}"
            f"\n  the console (workspaces, playground, metrics): "
            f"{gateway.endpoint.removesuffix('/v1')}/"
        )
    console.print(
        f"{headline}\n\n"
        f"  bosun chat {model}\n\n"
        f"  curl {endpoint}/chat/completions -H 'Content-Type: application/json' \\\n"
        f'    -d \'{{"model": "{model}", "messages": [{{"role": "user", "content": "Hi!"}}]}}\'\n\n'
        f"  from openai import OpenAI\n"
        f'  client = OpenAI(base_url="{endpoint}", api_key="none")\n'
        f'  client.chat.completions.create(model="{model}", '
        f'messages=[{{"role": "user", "content": "Hi!"}}])\n\n'
        f"Stop it with: bosun down {record.name}" + (" (or Ctrl-C here)" if foreground else ""),
        soft_wrap=True,
    )
    if foreground:
        _stay_attached(store, record.name)


def _stay_attached(store: Store, name: str) -> None:
    """`--foreground`: follow the log until Ctrl-C, which stops it."""
    try:
        _attach(store, name)
    except KeyboardInterrupt:  # Ctrl-C before the log was being followed
        _detach(store, name)


def _started(start: Callable[[Callable[[str], None]], Shown]) -> Shown:
    """``start(on_wait)`` under a spinner that says each state it passes; a refusal is
    said, not raised."""
    from bosun.local.runtime import LocalError

    try:
        with console.status("starting") as status:
            return start(lambda state: status.update(f"{state.lower()}..."))
    except LocalError as exc:
        fail(str(exc))


def _kind_of(file: Path) -> str | None:
    """The ``kind`` a file declares (None: unreadable; loading it says why)."""
    import yaml

    try:
        data = yaml.safe_load(file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return None
    return data.get("kind") if isinstance(data, dict) else None


def _up_rag(file: Path, name: str | None, port: int | None, foreground: bool) -> None:
    """`bosun up` of a RAGEngine: its embedding model prepared here first, then `bosun
    rag serve` supervised like a server."""
    from bosun.api import BosunError
    from bosun.api.load import load_resource
    from bosun.api.rag import RAGEngine
    from bosun.cli.prepare import prepare_model
    from bosun.cli.rag import sized
    from bosun.local.rag import up_rag

    try:
        rag = load_resource(file)
    except BosunError as exc:
        fail(str(exc))
    assert isinstance(rag, RAGEngine)
    plan = sized(rag)
    prepare_model(plan.embedding_model)  # a model that cannot load fails here, not in a loop
    store = _store()
    began = time.monotonic()
    shown = _started(
        lambda on_wait: up_rag(store, rag, plan, str(file), name, port, on_wait=on_wait)
    )
    record = shown.record
    if shown.state != "Ready":
        fail(f"{record.name} did not start: {record.message or shown.note}", code=1)
    endpoint = record.endpoint
    gateway = _gateway(store)
    data = record.command[record.command.index("--data") + 1]
    route = (
        f"\n  through the gateway: {gateway.endpoint} (model {record.model})"
        if gateway is not None
        else ""
    )
    console.print(
        f"[green]{record.name} is Ready[/green] in {time.monotonic() - began:.1f} s: "
        f"{endpoint} (RAG engine; indexes in {data}){route}"
        f"\n\n  bosun rag add --url {endpoint.removesuffix('/v1')} INDEX ./docs\n"
        f"  curl {endpoint}/indexes/INDEX/query -H 'Content-Type: application/json' "
        f'-d \'{{"query": "..."}}\'\n'
        f'  client.chat.completions.create(model="{record.name}", messages=[...], '
        f'extra_body={{"index": "INDEX"}})\n\n'
        f"Stop it with: bosun down {record.name} (the indexes are kept)"
        + (" (or Ctrl-C here)" if foreground else ""),
        soft_wrap=True,
    )
    if foreground:
        _stay_attached(store, record.name)


def _gateway(store: Store) -> Record | None:
    """The local gateway, started if it does not run; None (with a warning saying why)
    if it cannot be."""
    from bosun.local.gateway import ensure_gateway
    from bosun.local.runtime import LocalError

    try:
        with console.status("starting the gateway"):
            gateway = ensure_gateway(store)
    except LocalError as exc:
        warn(str(exc))
        return None
    if isinstance(gateway, str):
        warn(gateway)
        return None
    return gateway.record


def _check_tuning(ws: Workspace, file: Path) -> None:
    from bosun.tuning.data import DataError
    from bosun.tuning.train import TuneError, TuneJob, check

    tuning = ws.spec.tuning
    assert tuning is not None
    inputs = [u.removeprefix("file://") for u in tuning.input.uris if u.startswith("file://")]
    job = TuneJob("", inputs, "", tuning.method.value, config=dict(tuning.config))
    try:
        check(job)
    except (DataError, TuneError) as exc:
        fail(f"{file}: spec.tuning: {exc}")


def _job_started(store: Store, shown: Shown, foreground: bool) -> None:
    """A fine-tuning job is up once it runs: say where it writes and how to follow it."""
    record = shown.record
    if shown.state == "Failed":
        fail(f"{record.name} failed: {record.message or shown.note}", code=1)
    output = (record.workspace.get("spec", {}).get("tuning", {}).get("output", {})).get("uri", "")
    console.print(
        f"[green]{record.name} is {shown.state}[/green]: fine-tuning {record.model}; the "
        f"adapter goes to {output.removeprefix('file://')}\n\n"
        f"  bosun logs {record.name} -f    loss and time left, step by step\n"
        f"  bosun ps                   Running, then Succeeded or Failed\n\n"
        f"Stopped (bosun down {record.name}) or killed, `bosun up` again resumes it from its "
        "last checkpoint.",
        soft_wrap=True,
    )
    if foreground:
        _stay_attached(store, record.name)


def _attach(store: Store, name: str) -> None:
    """Print the workspace's log as it grows; stop the workspace on Ctrl-C or SIGTERM, or
    return when it is stopped from elsewhere."""
    import signal

    from bosun.local.runtime import show

    def interrupted(_signum: int, _frame: object) -> None:
        raise KeyboardInterrupt

    # Both explicitly: a process started in the background inherits SIGINT ignored, and
    # Python then installs no KeyboardInterrupt handler of its own.
    signal.signal(signal.SIGINT, interrupted)
    signal.signal(signal.SIGTERM, interrupted)
    try:
        for chunk in _follow(store, name):
            typer.echo(chunk, nl=False)
    except KeyboardInterrupt:
        _detach(store, name)
        return
    record = store.get(name)
    if record is not None and show(record).state == "Failed":
        fail(f"{name} failed: {record.message}", code=1)


def _detach(store: Store, name: str) -> None:
    """Stop the workspace a `bosun up --foreground` is attached to; a second Ctrl-C while
    it drains is ignored (the server gets its time to finish requests)."""
    import signal

    from bosun.local.gateway import stop_if_unused
    from bosun.local.runtime import LocalError
    from bosun.local.runtime import down as stop

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    console.print(f"\nstopping {name}...")
    try:
        stop(store, name)
    except LocalError:
        return  # already gone
    console.print(f"{name} stopped")
    if stop_if_unused(store) is not None:
        console.print("the gateway stopped (nothing left behind it)")


def _follow(store: Store, name: str) -> Iterator[str]:
    """New text of the workspace's log until the workspace is gone, stopped or failed."""
    from bosun.local.runtime import show

    with store.log_path(name).open("rb") as f:
        f.seek(0, os.SEEK_END)
        checked = time.monotonic()
        while True:
            chunk = f.read()
            if chunk:
                yield chunk.decode(errors="replace")
                continue
            if time.monotonic() - checked > 1.0:
                checked = time.monotonic()
                record = store.get(name)
                if record is None or show(record).state in ("Stopped", "Failed", "Succeeded"):
                    return
            time.sleep(0.2)


def ps(
    output: Annotated[Format, typer.Option("--output", "-o", help="table or json.")] = Format.TABLE,
) -> None:
    """List local workspaces, checked against their processes and ports."""
    from rich.table import Table

    from bosun.local.runtime import adopt, show, untracked

    store = _store()
    for name in adopt(store):
        warn(f"{name}: runs but the state store had no row for it; listed again from its process")
    shown = [show(r) for r in store.all()]
    for name, why in untracked(store).items():
        warn(f"{name}: {why}; bosun down {name} stops what runs for it and forgets it")
    if output is not Format.TABLE:
        dump([s.to_json() for s in shown], output)
        return
    table = Table(title_justify="left")
    for column in ("name", "model", "state", "endpoint", "devices", "restarts", "pid", "uptime"):
        table.add_column(column)
    colours = {
        "Ready": "green",
        "Succeeded": "green",
        "Failed": "red",
        "Stopped": "dim",
        "Idle": "blue",
    }
    for s in sorted(shown, key=lambda s: s.record.kind != "gateway"):
        r = s.record
        state = f"[{colours.get(s.state, 'yellow')}]{s.state}[/]"
        if not s.supervised and s.state == "Ready":
            state += " (unsupervised)"
        uptime = s.uptime_s
        table.add_row(
            r.name,
            r.model or ("(every model)" if r.kind == "gateway" else "-"),
            state,
            r.endpoint or "-",
            ",".join(r.devices) or "-",
            str(r.restarts),
            str(r.pid or "-"),
            f"{int(uptime // 60)}m{int(uptime % 60):02d}s" if uptime else "-",
        )
    console.print(table)
    for s in shown:
        if s.note:
            console.print(f"{s.record.name}: {s.note}", soft_wrap=True)


def logs(
    name: Annotated[str, typer.Argument(help="A local workspace.")],
    tail: Annotated[int, typer.Option("--tail", "-n", min=0, help="Lines to show.")] = 50,
    follow: Annotated[bool, typer.Option("--follow", "-f", help="Keep printing.")] = False,
) -> None:
    """Print a local workspace's server log."""
    from bosun.local.runtime import LocalError
    from bosun.local.runtime import logs as read

    store = _store()
    try:
        for line in read(store, name, tail):
            typer.echo(line)
    except LocalError as exc:
        fail(str(exc))
    if not follow:
        return
    try:
        for chunk in _follow(store, name):
            typer.echo(chunk, nl=False)
    except KeyboardInterrupt:
        return


def down(
    name: Annotated[str | None, typer.Argument(help="A local workspace.")] = None,
    all_: Annotated[bool, typer.Option("--all", help="Stop every local workspace.")] = False,
) -> None:
    """Stop a local workspace (or all of them) and free its port."""
    from bosun.local.gateway import stop_if_unused
    from bosun.local.runtime import GATEWAY, LocalError, untracked
    from bosun.local.runtime import down as stop

    if (name is None) == (not all_):
        fail("give a workspace NAME or --all")
    store = _store()
    names = sorted({r.name for r in store.all()} | set(untracked(store))) if all_ else [name or ""]
    # The gateway first: it would start a workspace scaled to zero meanwhile.
    names.sort(key=lambda n: n != GATEWAY)
    for each in names:
        try:
            _stopped(stop(store, each))
        except LocalError as exc:
            fail(str(exc))
    gateway = stop_if_unused(store)  # with the last server gone, the gateway goes too
    if gateway is not None:
        _stopped(gateway)


def _stopped(record: Record) -> None:
    freed = f"; port {record.port} is free" if record.port else ""
    console.print(f"{record.name} stopped{freed}")


def status(
    name: Annotated[str, typer.Argument(help="A local workspace.")],
    output: Annotated[Format, typer.Option("--output", "-o", help="yaml or json.")] = Format.YAML,
) -> None:
    """Print a local workspace with status conditions, as the operator writes them."""
    from bosun.local.runtime import show
    from bosun.local.runtime import status as document

    record = _store().get(name)
    if record is None:
        fail(f"no local workspace named {name!r} (bosun ps lists them)")
    dump(document(show(record)), Format.JSON if output is Format.JSON else Format.YAML)


def chat(
    name: Annotated[
        str | None, typer.Argument(help="A local workspace, or a model the local gateway serves.")
    ] = None,
    message: Annotated[
        str | None, typer.Option("--message", "-m", help="Ask once, print, exit.")
    ] = None,
    url: Annotated[
        str | None, typer.Option(help="Any OpenAI-compatible base URL (…/v1) instead.")
    ] = None,
    model: Annotated[str | None, typer.Option(help="Model name (default: the server's).")] = None,
    api_key: Annotated[str, typer.Option(envvar="OPENAI_API_KEY", help="Bearer token.")] = "none",
    max_tokens: Annotated[int, typer.Option(min=1, help="Longest answer.")] = 512,
    temperature: Annotated[
        float, typer.Option(min=0.0, max=2.0, help="Sampling temperature (0: greedy).")
    ] = 0.2,
) -> None:
    """Chat in the terminal with streaming answers and history (or one question with -m).

    The default temperature, 0.2, is what SmolLM2's authors advise; at OpenAI's default of
    1.0 a model this small rambles."""
    try:
        import openai
    except ImportError:
        fail("bosun chat needs the openai client: pip install 'bosun[serve]'")
    if (name is None) == (url is None):
        fail("give a local workspace NAME (or a MODEL) or --url")
    if name is not None:
        url, model = _chat_target(name, model)
    client = openai.OpenAI(base_url=url, api_key=api_key, max_retries=0)
    try:
        model = model or client.models.list().data[0].id
    except (openai.OpenAIError, IndexError) as exc:
        fail(f"{url}: no model to talk to ({exc})")
    history: list[Any] = []  # openai's message param types

    def ask(text: str) -> None:
        history.append({"role": "user", "content": text})
        answer = ""
        stream: Any = client.chat.completions.create(
            model=model or "",
            messages=history,
            stream=True,
            max_tokens=max_tokens,
            temperature=temperature,
        )
        for chunk in stream:
            if chunk.choices and chunk.choices[0].delta.content:
                answer += chunk.choices[0].delta.content
                console.print(chunk.choices[0].delta.content, end="", soft_wrap=True, markup=False)
        console.print()
        history.append({"role": "assistant", "content": answer})

    try:
        if message is not None:
            ask(message)
            return
        console.print(f"[dim]{model} at {url}; an empty line or Ctrl-D ends.[/dim]")
        while True:
            text = console.input("[bold]> [/bold]").strip()
            if not text:
                return
            ask(text)
    except (EOFError, KeyboardInterrupt):
        console.print()
    except openai.OpenAIError as exc:
        fail(f"{url}: {exc}", code=1)


def _chat_target(name: str, model: str | None) -> tuple[str, str]:
    """(base URL, model) for `bosun chat NAME`: through the local gateway when it runs
    (NAME a workspace or any model behind it), else the workspace's own server."""
    from bosun.local.gateway import running_gateway
    from bosun.local.runtime import GATEWAY

    store = _store()
    record = store.get(name) if name != GATEWAY else None
    if record is not None and record.kind == "job":
        fail(f"{name} is a fine-tuning job: it serves nothing to chat with")
    gateway = running_gateway(store)
    if gateway is not None:
        return gateway.record.endpoint, model or (record.model if record else name)
    if record is None:
        fail(f"no local workspace named {name!r}, and no gateway runs to ask for models")
    if record.state == "Idle":
        fail(f"{name} is scaled to zero and no gateway runs to start it: bosun up it again")
    return record.endpoint, model or record.model


def register(app: typer.Typer) -> None:
    for command in (up, ps, status, logs, chat, down):
        app.command()(command)
