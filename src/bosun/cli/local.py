"""`bosun up`, `ps`, `logs` and `down`: Workspaces served on this machine."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from bosun.cli.output import Format, console, dump, fail, warn

if TYPE_CHECKING:
    from bosun.api import Workspace
    from bosun.catalog import Plan
    from bosun.local.state import Store

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


def _local_plan(file: Path) -> tuple[Workspace, Plan]:
    from bosun.api import BosunError, load_workspace
    from bosun.catalog import plan_workspace
    from bosun.catalog.accelerators import cpu_profile

    try:
        ws = load_workspace(file)
        memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
        plan = plan_workspace(ws, target="local", local_profile=cpu_profile(memory))
    except BosunError as exc:
        fail(str(exc))
    for message in plan.warnings:
        warn(message)
    return ws, plan


def up(
    file: Annotated[Path, typer.Argument(help="A Workspace YAML file.")],
    name: Annotated[str | None, typer.Option(help="Local name (default: metadata.name).")] = None,
    port: Annotated[
        int | None, typer.Option(min=1, max=65535, help="Port (default: a free one).")
    ] = None,
) -> None:
    """Serve a Workspace on this machine: plan it, start a supervised server, wait until
    it answers, and print how to use it."""
    from bosun.cli.main import prepare_model
    from bosun.local.runtime import LocalError
    from bosun.local.runtime import up as start

    ws, plan = _local_plan(file)
    if plan.workload == "inference" and not plan.fits:
        fail(f"{ws.metadata.name} does not fit this machine: {plan.reason}")
    store = _store()
    if plan.workload == "inference" and ws.spec.inference and ws.spec.inference.preset:
        prepare_model(plan.model)
    began = time.monotonic()
    try:
        with console.status("starting") as status:
            shown = start(
                store,
                ws,
                plan,
                str(file),
                name=name,
                port=port,
                on_wait=lambda state: status.update(f"{state.lower()}..."),
            )
    except LocalError as exc:
        fail(str(exc))
    record = shown.record
    if shown.state != "Ready":
        fail(f"{record.name} did not start: {record.message or shown.note}", code=1)
    model = record.model
    console.print(
        f"[green]{record.name} is Ready[/green] in {time.monotonic() - began:.1f} s: "
        f"{record.endpoint} (model {model})\n\n"
        f"  curl {record.endpoint}/chat/completions -H 'Content-Type: application/json' \\\n"
        f'    -d \'{{"model": "{model}", "messages": [{{"role": "user", "content": "Hi!"}}]}}\'\n\n'
        f"  from openai import OpenAI\n"
        f'  client = OpenAI(base_url="{record.endpoint}", api_key="none")\n'
        f'  client.chat.completions.create(model="{model}", '
        f'messages=[{{"role": "user", "content": "Hi!"}}])\n\n'
        f"Stop it with: bosun down {record.name}",
        soft_wrap=True,
    )


def ps(
    output: Annotated[Format, typer.Option("--output", "-o", help="table or json.")] = Format.TABLE,
) -> None:
    """List local workspaces, checked against their processes and ports."""
    from rich.table import Table

    from bosun.local.runtime import show

    store = _store()
    rows = [show(r).to_json() for r in store.all()]
    if output is not Format.TABLE:
        dump(rows, output)
        return
    table = Table(title_justify="left")
    for column in ("name", "model", "state", "endpoint", "devices", "restarts", "pid", "uptime"):
        table.add_column(column)
    colours = {"Ready": "green", "Failed": "red", "Stopped": "dim"}
    for row in rows:
        state = str(row["state"])
        shown = f"[{colours.get(state, 'yellow')}]{state}[/]"
        if not row["supervised"] and state == "Ready":
            shown += " (unsupervised)"
        uptime = float(row["uptime_s"])  # type: ignore[arg-type]
        table.add_row(
            str(row["name"]),
            str(row["model"]),
            shown,
            str(row["endpoint"]),
            ",".join(row["devices"]),  # type: ignore[arg-type]
            str(row["restarts"]),
            str(row["pid"] or "-"),
            f"{int(uptime // 60)}m{int(uptime % 60):02d}s" if uptime else "-",
        )
    console.print(table)
    for row in rows:
        if row["note"]:
            console.print(f"{row['name']}: {row['note']}", soft_wrap=True)


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
    with store.log_path(name).open("rb") as f:
        f.seek(0, os.SEEK_END)
        try:
            while True:
                chunk = f.read()
                if chunk:
                    typer.echo(chunk.decode(errors="replace"), nl=False)
                else:
                    time.sleep(0.2)
        except KeyboardInterrupt:
            return


def down(
    name: Annotated[str | None, typer.Argument(help="A local workspace.")] = None,
    all_: Annotated[bool, typer.Option("--all", help="Stop every local workspace.")] = False,
) -> None:
    """Stop a local workspace (or all of them) and free its port."""
    from bosun.local.runtime import LocalError
    from bosun.local.runtime import down as stop

    if (name is None) == (not all_):
        fail("give a workspace NAME or --all")
    store = _store()
    names = [r.name for r in store.all()] if all_ else [name or ""]
    for each in names:
        try:
            record = stop(store, each)
        except LocalError as exc:
            fail(str(exc))
        console.print(f"{record.name} stopped; port {record.port} is free")


def register(app: typer.Typer) -> None:
    for command in (up, ps, logs, down):
        app.command()(command)
