"""``bosun gateway``: one OpenAI endpoint in front of running servers (``bosun serve`` or
vLLM), requests routed by model and balanced across replicas (docs/gateway.md)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated
from urllib.parse import urlsplit

import typer

from bosun.cli.cluster import check_namespace
from bosun.cli.output import fail, log_to_stderr
from bosun.local.gateway import DEFAULT_PORT

__all__ = ["gateway", "register"]


def replica_url(value: str) -> str:
    """A server's base URL as the gateway calls it (http(s)://host:port, no /v1); a bad
    one fails naming --replica."""
    parts = urlsplit(value.strip())
    path = parts.path.rstrip("/")
    if parts.scheme not in ("http", "https") or not parts.hostname or path not in ("", "/v1"):
        fail(f"--replica {value!r}: write a server's URL, as http://127.0.0.1:8000")
    try:
        parts.port  # noqa: B018 - a port that is not a number raises here
    except ValueError:
        fail(f"--replica {value!r}: its port is not a number from 1 to 65535")
    return f"{parts.scheme}://{parts.netloc}"


def gateway(
    replica: Annotated[
        list[str] | None,
        typer.Option(help="A server behind the gateway, as http://127.0.0.1:8000 (repeatable)."),
    ] = None,
    local: Annotated[
        bool,
        typer.Option(
            "--local",
            help="In front of the workspaces bosun up serves here (what bosun up starts).",
        ),
    ] = False,
    kubernetes: Annotated[
        bool,
        typer.Option(
            "--kubernetes",
            help="In front of the Workspaces of a cluster (their Services' EndpointSlices).",
        ),
    ] = False,
    namespace: Annotated[
        list[str] | None,
        typer.Option(
            "--namespace", "-n", help="With --kubernetes: only this namespace (repeatable)."
        ),
    ] = None,
    kubeconfig: Annotated[
        Path | None,
        typer.Option(help="With --kubernetes: a kubeconfig (default: in-cluster, $KUBECONFIG)."),
    ] = None,
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.", min=1, max=65535)] = DEFAULT_PORT,
    refresh: Annotated[
        float,
        typer.Option(min=0.1, help="Seconds between reads of the replicas' models and loads."),
    ] = 2.0,
    queue_size: Annotated[
        int,
        typer.Option(min=1, help="Requests that may wait per model while it starts."),
    ] = 256,
    cold_start_timeout: Annotated[
        float,
        typer.Option(min=1, help="Seconds a request waits for its model to start."),
    ] = 600.0,
    policy: Annotated[
        str,
        typer.Option(
            help="cache-aware (prefixes and adapters stay on their replica, bounded load) "
            "or round-robin."
        ),
    ] = "cache-aware",
    header_timeout: Annotated[
        float | None,
        typer.Option(
            min=0.1,
            help="Seconds a connection has to send a request's headers before it is closed "
            "(idle and trickling sockets)  [default: 10, as bosun serve]",
            show_default=False,
        ),
    ] = None,
    log_level: Annotated[
        str, typer.Option(help="critical, error, warning, info or debug.")
    ] = "info",
) -> None:
    """Serve one OpenAI endpoint in front of running servers: each request goes to a
    replica of its model, prompts that begin alike to the same one."""
    if [bool(replica), local, kubernetes].count(True) != 1:
        fail(
            "give the servers with --replica URL (repeatable), or --local for bosun up's, "
            "or --kubernetes for a cluster's"
        )
    if policy not in ("cache-aware", "round-robin"):
        fail(f"--policy {policy!r}: cache-aware or round-robin")
    if namespace and not kubernetes:
        fail("--namespace goes with --kubernetes")
    if kubeconfig is not None and not kubernetes:
        fail("--kubeconfig goes with --kubernetes")
    for each in namespace or ():
        check_namespace(each)
    replicas = tuple(dict.fromkeys(replica_url(r) for r in replica or ()))
    import uvicorn

    from bosun.gateway.proxy import GatewaySettings, build_gateway
    from bosun.gateway.sources import LocalSource, Source, StaticSource
    from bosun.serving.connections import guarded_h11

    source: Source
    if kubernetes:
        from bosun.gateway.cluster import KubernetesSource

        source = KubernetesSource(tuple(namespace or ()), kubeconfig)
        behind = f"the Workspaces in {', '.join(namespace) if namespace else 'every namespace'}"
    elif local:
        source, behind = LocalSource(), "the workspaces bosun up serves"
    else:
        source, behind = StaticSource(replicas), ", ".join(replicas)
    log_to_stderr("bosun.gateway", log_level)
    typer.echo(f"bosun gateway: http://{host}:{port}/v1 in front of {behind}")
    settings = GatewaySettings(
        replicas,
        refresh_seconds=refresh,
        max_queue=queue_size,
        cold_start_timeout=cold_start_timeout,
        policy=policy,
    )
    app = build_gateway(settings, source)
    uvicorn.run(
        app,
        host=host,
        port=port,
        log_level=log_level,
        timeout_graceful_shutdown=30,
        http=guarded_h11(header_timeout) if header_timeout else guarded_h11(),
    )


def register(app: typer.Typer) -> None:
    app.command()(gateway)
