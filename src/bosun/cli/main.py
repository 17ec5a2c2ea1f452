"""``bosun``: plan, render and run Workspaces."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from bosun import __version__
from bosun.cli.cluster import register as _register_cluster
from bosun.cli.gateway import register as _register_gateway
from bosun.cli.local import register as _register_local
from bosun.cli.output import Format, console, dump, error, fail, log_to_stderr, warn
from bosun.cli.prepare import prepare_model
from bosun.cli.rag import register as _register_rag
from bosun.cli.tune import register as _register_tune

if TYPE_CHECKING:
    from bosun.api import Workspace
    from bosun.api.rag import RAGEngine
    from bosun.catalog import ModelSpec, Plan
    from bosun.render.placement import Placement

__all__ = ["app", "main"]

app = typer.Typer(
    name="bosun",
    help="Run AI models on Kubernetes the simple way, and the same Workspace on one machine.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

FileArg = Annotated[
    Path, typer.Argument(help="A Workspace YAML file.", exists=False, dir_okay=False)
]
AcceleratorOpt = Annotated[
    str | None,
    typer.Option(
        "--accelerator",
        "-a",
        help="Plan for this device profile (see `bosun accelerators`), or 'cpu'.",
    ),
]
InstanceTypeOpt = Annotated[
    str | None,
    typer.Option("--instance-type", "-t", help="Plan for this cloud instance type."),
]
OutputOpt = Annotated[Format, typer.Option("--output", "-o", help="Output format.")]


# `bosun serve --tool-call-parser`: the names of bosun.serving.tools.PARSERS (checked
# there by a test; this module imports no serving code before it must).
TOOL_CALL_PARSERS = ("hermes", "llama3_json", "mistral")


def _load(file: Path) -> Workspace:
    from bosun.api import BosunError, load_workspace
    from bosun.cli.environment import allowed_hosts

    try:
        return load_workspace(file, allowed_hosts())
    except BosunError as exc:
        fail(str(exc))


def _load_any(file: Path) -> Workspace | RAGEngine:
    """A Workspace or a RAGEngine, whichever the file holds."""
    from bosun.api import BosunError
    from bosun.api.load import load_resource
    from bosun.cli.environment import allowed_hosts

    try:
        return load_resource(file, allowed_hosts())
    except BosunError as exc:
        fail(str(exc))


def _plan(ws: Workspace, accelerator: str | None, instance_type: str | None) -> Plan:
    from bosun.api import BosunError
    from bosun.catalog import plan_workspace

    if accelerator and instance_type:
        fail("--accelerator and --instance-type are exclusive: an instance type has its own GPUs")
    try:
        plan = plan_workspace(ws, accelerator=accelerator, instance_type=instance_type)
    except BosunError as exc:
        fail(str(exc))
    for message in plan.warnings:
        warn(message)
    return plan


@app.command()
def validate(
    files: Annotated[list[Path], typer.Argument(help="Workspace YAML files.", dir_okay=False)],
) -> None:
    """Check Workspace files as the cluster and `bosun plan` would, without a cluster:
    every error names its file and field; exit 2 if any file is invalid (for CI)."""
    from bosun.api import BosunError, load_workspace
    from bosun.catalog import plan_workspace
    from bosun.cli.environment import allowed_hosts

    bad = 0
    for file in files:
        try:
            plan = plan_workspace(load_workspace(file, allowed_hosts()))
        except BosunError as exc:
            bad += 1
            text = str(exc)
            message = text if text.startswith(str(file)) else f"{file}: {text}"
            error(message)
            continue
        for message in plan.warnings:
            warn(f"{file}: {message}")
        console.print(f"[green]valid:[/green] {file} ({plan.devices_summary}, {plan.runtime})")
    if bad:
        raise typer.Exit(2)


@app.command()
def version() -> None:
    """Print Bosun's version."""
    console.print(__version__)


@app.command()
def crd() -> None:
    """Print Bosun's CustomResourceDefinitions, Workspace and RAGEngine (kubectl apply -f -)."""
    from bosun.api.crd import crds

    dump(crds(), Format.YAML)


@app.command()
def models(
    family: Annotated[
        str | None, typer.Option("--family", "-f", help="Only this family (qwen3, llama...).")
    ] = None,
    max_size: Annotated[
        str | None,
        typer.Option("--max-size", help="Only models of at most this many parameters (8B, 500M)."),
    ] = None,
    fits: Annotated[
        str | None,
        typer.Option(
            "--fits",
            help="Only models that one node of this instance type (or accelerator) serves "
            "at their default context.",
        ),
    ] = None,
    output: OutputOpt = Format.TABLE,
) -> None:
    """List the model presets of the catalog: family, size, runtimes, and with --fits how
    each would be laid out on that hardware."""
    from rich.table import Table

    from bosun.api.quantity import format_bytes
    from bosun.catalog import all_presets

    presets = all_presets()
    if family is not None:
        known = sorted({p.family for p in presets})
        if family.lower() not in known:
            fail(f"--family: unknown family {family!r}; the catalog has {', '.join(known)}")
        presets = [p for p in presets if p.family == family.lower()]
    if max_size is not None:
        limit = _parameter_count(max_size)
        presets = [p for p in presets if p.parameters <= limit]
    layouts: dict[str, str] = {}
    if fits is not None:
        layouts = _layouts_on(presets, fits)
        presets = [p for p in presets if p.name in layouts]
    if output is not Format.TABLE:
        rows = [p.model_dump(by_alias=True, exclude_none=True) for p in presets]
        for row in rows:
            if row["name"] in layouts:
                row["layout"] = layouts[row["name"]]
        dump(rows, output)
        return
    table = Table(title="Model presets", title_justify="left")
    # The name is what a Workspace says: never cut, whatever the terminal's width.
    widest = max((len(p.name) for p in presets), default=4)
    table.add_column("name", no_wrap=True, min_width=widest)
    if fits is not None:  # fewer columns, to leave room for the layout
        for column in ("params", "context", "weights", "license", f"on {fits}"):
            right = column in ("params", "context")
            table.add_column(column, justify="right" if right else "left", overflow="fold")
        for p in presets:
            table.add_row(
                p.name,
                f"{p.parameters / 1e9:.2f}B",
                f"{p.max_context:,}",
                _weights(p),
                p.license,
                layouts[p.name],
            )
    else:
        columns = ("family", "params", "architecture", "context", "KV/token", "weights")
        for column in (*columns, "license", "runtimes", "tunable"):
            right = column in ("params", "context")
            table.add_column(column, justify="right" if right else "left", overflow="fold")
        for p in presets:
            table.add_row(
                p.name,
                p.family,
                f"{p.parameters / 1e9:.2f}B",
                p.architecture.removesuffix("ForCausalLM").removesuffix("ForConditionalGeneration"),
                f"{p.max_context:,}",
                format_bytes(p.kv_bytes_per_token(2)),
                _weights(p),
                p.license + (" (gated)" if p.gated else ""),
                ", ".join(p.runtimes),
                "yes" if p.tunable else "no",
            )
    console.print(table)
    console.print(
        "KV/token in bf16, over all layers; weights as the checkpoint ships them. "
        "`bosun plan FILE` sizes one."
    )


def _weights(p: ModelSpec) -> str:
    from bosun.api.quantity import format_bytes

    quantized = p.quantization.value != "none"
    return format_bytes(p.weight_bytes) + (f" ({p.quantization.value})" if quantized else "")


def _parameter_count(text: str) -> float:
    """``8B``, ``1.5b``, ``500M`` or a plain number of parameters."""
    units = {"k": 1e3, "m": 1e6, "b": 1e9, "t": 1e12}
    raw = text.strip().lower()
    try:
        if raw and raw[-1] in units:
            return float(raw[:-1]) * units[raw[-1]]
        return float(raw)
    except ValueError:
        fail(f"--max-size: {text!r} is not a parameter count (as 8B, 1.5B or 500M)")


def _layouts_on(presets: list[ModelSpec], hardware: str) -> dict[str, str]:
    """For each preset that one node of ``hardware`` serves at its default context: the
    devices and layout the plan takes."""
    from bosun.api import BosunError, preset_workspace
    from bosun.catalog import get_instance_type, get_profile, plan_workspace
    from bosun.catalog.accelerators import CPU, UnknownAcceleratorError

    instance_type = accelerator = None
    try:
        get_instance_type(hardware)
        instance_type = hardware
    except UnknownAcceleratorError:
        try:
            accelerator = hardware if hardware == CPU else get_profile(hardware).name
        except UnknownAcceleratorError:
            fail(
                f"--fits: {hardware!r} is neither an instance type nor an accelerator profile "
                "(`bosun accelerators` lists them)"
            )
    out: dict[str, str] = {}
    for p in presets:
        ws = preset_workspace(p.name, "fits")
        try:
            plan = plan_workspace(ws, accelerator=accelerator, instance_type=instance_type)
        except BosunError:  # no runtime serves it there (vLLM on a CPU, say)
            continue
        if plan.fits and plan.nodes_per_replica == 1:
            out[p.name] = f"{plan.devices_summary}, {plan.runtime}"
    return out


@app.command()
def accelerators(output: OutputOpt = Format.TABLE) -> None:
    """List accelerator profiles and the cloud instance types that carry them."""
    from rich.table import Table

    from bosun.api.quantity import format_bytes
    from bosun.catalog import all_instance_types, all_profiles

    profiles = all_profiles()
    types = all_instance_types()
    if output is not Format.TABLE:
        dump(
            {
                "profiles": [
                    {
                        "name": p.name,
                        "kind": p.kind,
                        "memoryBytes": p.memory_bytes,
                        "productName": p.product_name,
                    }
                    for p in profiles
                ],
                "instanceTypes": [
                    {"name": t.name, "provider": t.provider, "profile": t.profile, "count": t.count}
                    for t in types
                ],
            },
            output,
        )
        return
    table = Table(title="Accelerator profiles", title_justify="left")
    for column in ("name", "kind", "memory", "product", "instance types"):
        table.add_column(column)
    for p in profiles:
        carried = [f"{t.name} ({t.count})" for t in types if t.profile == p.name]
        table.add_row(
            p.name, p.kind, format_bytes(p.memory_bytes), p.product_name, ", ".join(carried)
        )
    table.add_row("cpu", "cpu", "spec.resource.memory", "", "")
    console.print(table)


def _print_plan_table(plan: Plan) -> None:
    from rich.table import Table

    from bosun.api.quantity import format_bytes

    m = plan.memory
    table = Table(title=f"Plan for {plan.workspace}", show_header=False, title_justify="left")
    table.add_column(style="bold")
    table.add_column()
    rows = [
        ("model", f"{plan.model} ({plan.model_ref})"),
        ("workload", plan.workload),
        ("runtime", plan.runtime),
        (
            "accelerator",
            plan.accelerator.name
            + (f" on {plan.instance_type.name}" if plan.instance_type else ""),
        ),
        ("devices per replica", "cpu" if plan.cpu_only else str(plan.devices_per_replica)),
        ("tensor x pipeline", f"{plan.tensor_parallel_size} x {plan.pipeline_parallel_size}"),
        ("nodes per replica", str(plan.nodes_per_replica)),
        ("replicas", str(plan.replicas)),
        ("dtype / quantization", f"{plan.dtype} / {plan.quantization}"),
        ("max model len x concurrency", f"{plan.max_model_len} x {plan.concurrency}"),
        ("weights", format_bytes(m.weights_bytes)),
        (
            "KV cache",
            f"{format_bytes(m.kv_cache_bytes)} ({format_bytes(m.kv_bytes_per_token)}/token)",
        ),
        ("activations per device", format_bytes(m.activation_bytes)),
        ("runtime overhead per device", format_bytes(m.overhead_bytes)),
        ("need per device", format_bytes(m.per_device_bytes)),
        (
            "usable per device",
            f"{format_bytes(m.usable_bytes)} of {format_bytes(m.device_capacity_bytes)}",
        ),
    ]
    if plan.nodes_to_provision:
        rows.append(("nodes to provision", str(plan.nodes_to_provision)))
    for key, value in rows:
        table.add_row(key, value)
    table.add_row("fits", "[green]yes[/green]" if plan.fits else "[red]no[/red]")
    table.add_row("reason", plan.reason)
    console.print(table)


@app.command()
def plan(
    file: FileArg,
    accelerator: AcceleratorOpt = None,
    instance_type: InstanceTypeOpt = None,
    output: OutputOpt = Format.TABLE,
    cluster: Annotated[
        Path | None,
        typer.Option(
            "--cluster",
            help="A cluster snapshot (as for `bosun dra allocate`): which nodes host the replicas.",
        ),
    ] = None,
) -> None:
    """Size a Workspace (devices, parallelism, runtime and the memory breakdown) or a
    RAGEngine (its memory, CPU and how many chunks its storage holds).

    Exits 2 when the model does not fit (the reason says by how much and what would).
    """
    from bosun.api.rag import RAGEngine

    ws = _load_any(file)
    if isinstance(ws, RAGEngine):
        from bosun.cli.rag import plan_rag_engine

        plan_rag_engine(ws, output, gpu_options=bool(accelerator or instance_type or cluster))
        return
    result = _plan(ws, accelerator, instance_type)
    placement = _placement(ws, result, cluster) if cluster is not None else None
    if output is Format.TABLE:
        _print_plan_table(result)
        if placement is not None:
            _print_placement(placement)
    else:
        data = result.to_json()
        if placement is not None:
            data["cluster"] = placement.to_json()
        dump(data, output)
    if not result.fits:
        fail(f"{_fit_field(ws)}: {result.reason}")
    if placement is not None and not placement.complete:
        placed = sum(n is not None for n in placement.replicas)
        fail(
            f"--cluster: only {placed} of {len(placement.replicas)} replicas fit on the "
            f"nodes of {cluster}; see each node's reason above"
        )


def _placement(ws: Workspace, result: Plan, cluster: Path) -> Placement | None:
    from bosun.api import BosunError
    from bosun.devices.snapshot import load_snapshot
    from bosun.render.placement import place_replicas

    if not result.accelerator.is_gpu:
        warn("--cluster: a CPU-only Workspace claims no devices; nothing to place")
        return None
    try:
        return place_replicas(ws, result, load_snapshot(cluster))
    except BosunError as exc:
        fail(f"--cluster: {exc}")


def _print_placement(placement: Placement) -> None:
    from rich.table import Table

    table = Table(title="Nodes of the cluster snapshot", title_justify="left")
    table.add_column("node")
    table.add_column("hosts a replica")
    table.add_column("reason")
    for n in placement.nodes:
        table.add_row(
            n["node"], "[green]yes[/green]" if n["fits"] else "[red]no[/red]", n["reason"]
        )
    console.print(table)
    where = ", ".join(f"{i}: {n or 'nowhere'}" for i, n in enumerate(placement.replicas))
    console.print(f"Replicas (first fit): {where}")


def _fit_field(ws: Workspace) -> str:
    acc = ws.spec.resource.accelerator
    if acc is not None and acc.count is not None:
        return "spec.resource.accelerator.count"
    return "spec.resource"


@app.command()
def render(
    file: FileArg,
    accelerator: AcceleratorOpt = None,
    instance_type: InstanceTypeOpt = None,
    extended_resources: Annotated[
        bool,
        typer.Option(
            "--extended-resources",
            help="Request nvidia.com/gpu limits instead of DRA claims (clusters without DRA).",
        ),
    ] = False,
    namespace: Annotated[
        str | None, typer.Option("--namespace", "-n", help="Namespace of the objects.")
    ] = None,
    inference_pool: Annotated[
        bool,
        typer.Option(
            "--inference-pool",
            help="Also an InferencePool (Gateway API Inference Extension) for your own gateway.",
        ),
    ] = False,
    endpoint_picker: Annotated[
        str | None,
        typer.Option(help="With --inference-pool: the endpoint picker's Service (NAME-epp)."),
    ] = None,
) -> None:
    """Print the Kubernetes manifests of a Workspace or a RAGEngine (kubectl apply -f -)."""
    from bosun.api.validators import check_dns1123_label
    from bosun.render import RenderOptions, render_workspace

    if namespace is not None:
        try:
            check_dns1123_label(namespace)
        except ValueError as exc:
            fail(f"--namespace: {exc}")
    if endpoint_picker is not None:
        if not inference_pool:
            fail("--endpoint-picker goes with --inference-pool")
        try:
            check_dns1123_label(endpoint_picker)  # a Service's name
        except ValueError as exc:
            fail(f"--endpoint-picker: {exc}")
    from bosun.api.rag import RAGEngine

    ws = _load_any(file)
    if isinstance(ws, RAGEngine):
        from bosun.cli.rag import render_rag

        render_rag(ws, namespace)
        return
    result = _plan(ws, accelerator, instance_type)
    acc = ws.spec.resource.accelerator
    if not result.fits and (acc is None or acc.count is None):
        fail(f"{_fit_field(ws)}: {result.reason}")
    from bosun.cli.environment import allowed_hosts

    options = RenderOptions(
        namespace=namespace,
        extended_resources=extended_resources,
        allowed_hosts=allowed_hosts(),
        inference_pool=inference_pool,
        endpoint_picker=endpoint_picker,
    )
    dump(render_workspace(ws, result, options), Format.YAML)


dra = typer.Typer(
    help="Dynamic Resource Allocation: allocate claims against a cluster snapshot.",
    no_args_is_help=True,
)
app.add_typer(dra, name="dra")


@app.command()
def devices(
    output: OutputOpt = Format.TABLE,
    node_name: Annotated[
        str | None, typer.Option("--node-name", help="Node name for the slice (default: hostname).")
    ] = None,
) -> None:
    """Show this machine's accelerators as a DRA ResourceSlice (NVIDIA's attribute names)."""
    from bosun.devices.discovery import discover
    from bosun.devices.model import to_wire

    found = discover(node_name)
    if found is None:
        if output is Format.TABLE:
            console.print("No accelerators found: this is a CPU-only host (or NVML is missing).")
        return
    if output is not Format.TABLE:
        dump([to_wire(found)] if output is Format.YAML else to_wire(found), output)
        return
    from rich.table import Table

    from bosun.api.quantity import format_bytes, parse_quantity

    table = Table(title=f"ResourceSlice {found.metadata.name}", title_justify="left")
    for column in ("device", "type", "product", "memory", "uuid"):
        table.add_column(column)
    for d in found.spec.devices:
        attrs = {k: v.value for k, v in d.attributes.items()}
        memory = d.capacity.get("memory")
        table.add_row(
            d.name,
            str(attrs.get("type", "")),
            str(attrs.get("productName", ""))
            + (f" {attrs['profile']}" if "profile" in attrs else ""),
            format_bytes(float(parse_quantity(memory.value))) if memory else "",
            str(attrs.get("uuid", "")),
        )
    console.print(table)


@dra.command("allocate")
def dra_allocate(
    file: Annotated[
        Path,
        typer.Option(
            "--file",
            "-f",
            help="Multi-document YAML: DeviceClasses, ResourceSlices, ResourceClaims, Nodes.",
        ),
    ],
    node: Annotated[str | None, typer.Option("--node", help="Only this node.")] = None,
    output: OutputOpt = Format.TABLE,
) -> None:
    """Allocate the snapshot's pending claims (as one pod's) on each node, as kube-scheduler would.

    Exits 1 on invalid input or a CEL error; a claim that fits nowhere exits 0 with each
    node's reason.
    """
    from bosun.api import BosunError
    from bosun.devices.cluster import allocate_on_nodes
    from bosun.devices.snapshot import load_snapshot

    try:
        snapshot = load_snapshot(file)
        if not snapshot.node_infos():
            fail(f"{file}: no nodes: add Node objects or node-local ResourceSlices", code=1)
        outcomes = allocate_on_nodes(snapshot, node=node)
    except KeyError:
        fail(f"--node: no node {node!r} in {file}", code=1)
    except BosunError as exc:
        fail(str(exc), code=1)
    if output is not Format.TABLE:
        dump([o.to_json() for o in outcomes], output)
        return
    from rich.table import Table

    table = Table(title=f"Allocating {len(snapshot.claims)} claim(s)", title_justify="left")
    table.add_column("node")
    table.add_column("fits")
    table.add_column("reason")
    for o in outcomes:
        table.add_row(o.node, "[green]yes[/green]" if o.allocated else "[red]no[/red]", o.reason)
    console.print(table)


@app.command()
def serve(
    model: Annotated[
        str,
        typer.Option("--model", "-m", help="A preset, a Hugging Face directory or a .gguf file."),
    ],
    served_model_name: Annotated[
        str | None, typer.Option(help="The name clients use (default: the model's).")
    ] = None,
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.", min=1, max=65535)] = 8000,
    api_key: Annotated[
        str | None,
        typer.Option(
            envvar="BOSUN_API_KEY",
            help="Require this bearer token on every route but /health.",
        ),
    ] = None,
    public_metrics: Annotated[
        bool, typer.Option(help="Serve /metrics without the API key (for a Prometheus scrape).")
    ] = False,
    max_request_bytes: Annotated[
        int | None,
        typer.Option(min=1024, help="Larger request bodies are refused, 413 (default 4 MiB)."),
    ] = None,
    tool_call_parser: Annotated[
        str,
        typer.Option(
            help="How the model writes tool calls under tool_choice auto: hermes "
            "(<tool_call>{json}</tool_call>: Qwen2.5, ChatML models, and Bosun's prompt for "
            "templates without tools), llama3_json (Llama 3.1+) or mistral ([TOOL_CALLS])."
        ),
    ] = "hermes",
    responses_store: Annotated[
        Path | None,
        typer.Option(
            help="Keep the Responses API's stored responses in this SQLite file (default: "
            "in memory); either way for an hour."
        ),
    ] = None,
    allow_runtime_lora: Annotated[
        bool,
        typer.Option(
            help="Allow /v1/load_lora_adapter and /v1/unload_lora_adapter: any client with "
            "the key may then load an adapter from a directory on this machine."
        ),
    ] = False,
    max_model_len: Annotated[
        int | None, typer.Option(min=16, help="Longest sequence (default: the model's context).")
    ] = None,
    max_concurrency: Annotated[
        int, typer.Option(min=1, max=1024, help="Sequences decoded together in one batch.")
    ] = 16,
    max_waiting: Annotated[
        int, typer.Option(min=0, help="Requests queued beyond that; more get 429.")
    ] = 256,
    max_batched_tokens: Annotated[
        int | None,
        typer.Option(
            min=1,
            help="Tokens one step computes at most; longer prompts are prefilled in chunks "
            "(default 512 on CPUs, 2048 on GPUs).",
        ),
    ] = None,
    prefix_cache_tokens: Annotated[
        int | None,
        typer.Option(
            min=0,
            help="On CPUs: tokens of finished requests' prompts kept for later requests that "
            "begin alike (0: only what running requests hold; default 8192).",
        ),
    ] = None,
    adapter: Annotated[
        list[str] | None,
        typer.Option(
            help="A LoRA adapter served as its own model: NAME=PATH[:STRENGTH] (a PEFT "
            "directory; strength 0-1, default 1). Repeatable.",
        ),
    ] = None,
    enforce_eager: Annotated[
        bool,
        typer.Option(help="On CUDA, launch decode steps kernel by kernel, not from CUDA graphs."),
    ] = False,
    dtype: Annotated[str, typer.Option(help="auto, float32, bfloat16 or float16.")] = "auto",
    device: Annotated[str, typer.Option(help="cpu or cuda.")] = "cpu",
    threads: Annotated[
        int | None,
        typer.Option(
            min=1,
            max=1024,
            help="CPU threads (default: the CPUs this process may use: its affinity mask "
            "capped by its cgroup's CPU quota).",
        ),
    ] = None,
    quantization: Annotated[str, typer.Option(help="auto (int8 on CPU), int8 or none.")] = "auto",
    backend: Annotated[
        str,
        typer.Option(
            "--engine",
            help="auto, bosun (the Bosun engine: Llama, Mistral, Qwen2, Phi-3, Gemma-2) or "
            "transformers (any Hugging Face causal LM, one sequence at a time); auto: bosun "
            "where it can.",
        ),
    ] = "auto",
    log_level: Annotated[
        str, typer.Option(help="critical, error, warning, info or debug.")
    ] = "info",
) -> None:
    """Serve a model behind an OpenAI-compatible API (chat, completions, streaming, metrics)."""
    if dtype not in ("auto", "float32", "bfloat16", "float16"):
        fail(f"--dtype: {dtype!r} is not one of auto, float32, bfloat16, float16")
    if device not in ("cpu", "cuda") and not device.startswith("cuda:"):
        fail(f"--device: {device!r} is not cpu or cuda")
    if log_level not in ("critical", "error", "warning", "info", "debug"):
        fail(f"--log-level: {log_level!r} is not one of critical, error, warning, info, debug")
    if quantization not in ("auto", "int8", "none"):
        fail(f"--quantization: {quantization!r} is not one of auto, int8, none")
    if backend not in ("auto", "bosun", "transformers"):
        fail(f"--engine: {backend!r} is not one of auto, bosun, transformers")
    if tool_call_parser not in TOOL_CALL_PARSERS:
        fail(
            f"--tool-call-parser: {tool_call_parser!r} is not one of {', '.join(TOOL_CALL_PARSERS)}"
        )
    adapters = tuple(_parse_adapter(a) for a in adapter or [])
    try:
        import uvicorn

        from bosun.engine.client import EngineClient
        from bosun.engine.engine import BosunEngine, EngineOptions
        from bosun.serving.app import ServeSettings, build_app
        from bosun.serving.connections import guarded_h11
    except ImportError as exc:
        fail(
            f"bosun serve needs the serve extra: pip install 'bosun[serve]' ({exc.name} is missing)"
        )
    prepare_model(model)
    engine: EngineClient
    if _embedding_model(model):
        from bosun.engine.embedder import EmbeddingEngine, EmbeddingOptions

        if adapters:
            fail(f"--adapter: {model} is an embedding model, which takes no LoRA adapters")
        engine = EmbeddingEngine(
            EmbeddingOptions(
                model=model,
                served_name=served_model_name,
                device=device,
                threads=threads,
                max_waiting=max_waiting,
            )
        )
        backend = "embedding"
    else:
        engine = BosunEngine(
            EngineOptions(
                model=model,
                served_name=served_model_name,
                max_model_len=max_model_len,
                max_num_seqs=max_concurrency,
                max_waiting=max_waiting,
                max_batched_tokens=max_batched_tokens,
                prefix_cache_tokens=prefix_cache_tokens,
                cuda_graphs=not enforce_eager,
                adapters=adapters,
                dtype=dtype,
                device=device,
                threads=threads,
                quantization=quantization,
                backend=backend,
            )
        )
    console.print(
        f"bosun serve: loading {model} (engine: {backend}) on {device}; "
        f"http://{host}:{port}/v1 answers once /health is ready"
    )
    log_to_stderr("bosun", log_level)
    settings = ServeSettings(
        api_key=api_key,
        public_metrics=public_metrics,
        runtime_lora=allow_runtime_lora,
        tool_parser=tool_call_parser,
        responses_store=responses_store,
    )
    if max_request_bytes is not None:
        settings = replace(settings, max_request_bytes=max_request_bytes)
    app_ = build_app(settings, engine)
    uvicorn.run(
        app_,
        host=host,
        port=port,
        log_level=log_level,
        timeout_graceful_shutdown=30,
        http=guarded_h11(),  # a connection's headers must arrive within 10 s
    )


def _embedding_model(model: str) -> bool:
    """Whether ``--model`` (found already) is an encoder served for embeddings."""
    from bosun.engine.embedder import is_embedding_model
    from bosun.engine.loader import resolve_model

    return is_embedding_model(resolve_model(model))


def _parse_adapter(value: str) -> tuple[str, str, float]:
    """NAME=PATH[:STRENGTH] as (name, path, strength); a bad one fails naming --adapter."""
    name, sep, rest = value.partition("=")
    if not sep or not name or not rest:
        fail(f"--adapter {value!r}: write NAME=PATH or NAME=PATH:STRENGTH")
    path, strength = rest, 1.0
    head, colon, tail = rest.rpartition(":")
    if colon and head:
        try:
            strength = float(tail)
        except ValueError:
            pass  # a colon in the path itself
        else:
            path = head
    if not 0 <= strength <= 1:
        fail(f"--adapter {name}: strength {strength:g} is not between 0 and 1")
    folder = Path(path).expanduser()
    if not (folder / "adapter_config.json").is_file():
        fail(f"--adapter {name}: {folder} is not a PEFT adapter directory (adapter_config.json)")
    return name, str(folder), strength


def main() -> None:
    """Entry point of the ``bosun`` script. A BosunError no command caught (bad input,
    damaged local state) is still one clear line and exit code 2, never a traceback."""
    try:
        app()
    except Exception as exc:
        from bosun.api.errors import BosunError

        if not isinstance(exc, BosunError):
            raise
        try:
            fail(str(exc))
        except typer.Exit as done:
            raise SystemExit(done.exit_code) from None


_register_local(app)
_register_cluster(app)
_register_tune(app)
_register_gateway(app)
_register_rag(app)

if __name__ == "__main__":
    main()
