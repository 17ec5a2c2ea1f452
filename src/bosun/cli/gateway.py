"""``bosun gateway``: one OpenAI endpoint in front of running servers (``bosun serve`` or
vLLM), requests routed by model and balanced across replicas (docs/gateway.md)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated
from urllib.parse import urlsplit

import typer

from bosun.cli.cluster import check_namespace
from bosun.cli.output import fail, log_to_stderr
from bosun.local.gateway import DEFAULT_PORT

if TYPE_CHECKING:
    from fastapi import FastAPI

    from bosun.console.backends import Backend
    from bosun.gateway.sources import Source

__all__ = ["console", "gateway", "register"]

CONSOLE_PORT = 8091  # beside the local gateway's 8090

# Options bosun gateway and bosun console share.
Namespaces = Annotated[
    list[str] | None,
    typer.Option("--namespace", "-n", help="With --kubernetes: only this namespace (repeatable)."),
]
Kubeconfig = Annotated[
    Path | None,
    typer.Option(help="With --kubernetes: a kubeconfig (default: in-cluster, $KUBECONFIG)."),
]
Host = Annotated[str, typer.Option(help="Address to listen on.")]


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
    namespace: Namespaces = None,
    kubeconfig: Kubeconfig = None,
    host: Host = "127.0.0.1",
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
    api_key: Annotated[
        str | None,
        typer.Option(
            envvar="BOSUN_API_KEY",
            help="Require this bearer token on the OpenAI routes, /metrics and the console's "
            "API (the console's page asks for it). A cluster's console needs one.",
        ),
    ] = None,
    console: Annotated[
        bool,
        typer.Option(help="Serve the web console at / (with --local or --kubernetes)."),
    ] = True,
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
    replica of its model, prompts that begin alike to the same one. With --local or
    --kubernetes, the web console too, at /."""
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
    if api_key is not None and not api_key.strip():
        fail("--api-key (or $BOSUN_API_KEY) is empty: give a token, or leave it unset")
    replicas = tuple(dict.fromkeys(replica_url(r) for r in replica or ()))
    import uvicorn

    from bosun.gateway.proxy import GatewaySettings, build_gateway
    from bosun.serving.connections import guarded_h11

    source, backend, behind = _sources(replicas, local, kubernetes, namespace, kubeconfig)
    log_to_stderr("bosun.gateway", log_level)
    log_to_stderr("bosun.console", log_level)
    typer.echo(f"bosun gateway: http://{host}:{port}/v1 in front of {behind}")
    web = None
    if console and backend is not None:
        web = _console(backend, source, api_key)
        typer.echo(f"bosun console: http://{host}:{port}/")
    settings = GatewaySettings(
        replicas,
        refresh_seconds=refresh,
        max_queue=queue_size,
        cold_start_timeout=cold_start_timeout,
        policy=policy,
        api_key=api_key,
    )
    app = build_gateway(settings, source, web)
    uvicorn.run(
        app,
        host=host,
        port=port,
        log_level=log_level,
        timeout_graceful_shutdown=30,
        http=guarded_h11(header_timeout) if header_timeout else guarded_h11(),
    )


def _sources(
    replicas: tuple[str, ...],
    local: bool,
    kubernetes: bool,
    namespace: list[str] | None,
    kubeconfig: Path | None,
) -> tuple[Source, Backend | None, str]:
    """Where the replicas are, where the console reads Workspaces (None for servers
    named on the command line: there are no Workspaces), and the words for both."""
    from bosun.cli.environment import allowed_hosts
    from bosun.console.backends import LocalBackend
    from bosun.gateway.sources import LocalSource, StaticSource

    if kubernetes:
        from bosun.console.cluster import ClusterBackend
        from bosun.gateway.cluster import KubernetesSource

        places = tuple(namespace or ())
        behind = f"the Workspaces in {', '.join(places) if places else 'every namespace'}"
        cluster = ClusterBackend(places, kubeconfig, allowed_hosts())
        return KubernetesSource(places, kubeconfig), cluster, behind
    if local:
        source = LocalSource()
        here = LocalBackend(source.store, allowed_hosts())
        return source, here, "the workspaces bosun up serves"
    return StaticSource(replicas), None, ", ".join(replicas)


def _console(backend: Backend, source: Source, api_key: str | None) -> FastAPI:
    from bosun.console.app import build_console

    locked = None
    if backend.mode == "cluster" and api_key is None:
        locked = (
            "in a cluster the console needs an API key: run the gateway with --api-key "
            "(or $BOSUN_API_KEY, from a Secret)"
        )
    return build_console(backend, source, keyed=api_key is not None, locked=locked)


def console(
    local: Annotated[
        bool,
        typer.Option("--local", help="The workspaces bosun up runs here."),
    ] = False,
    kubernetes: Annotated[
        bool,
        typer.Option("--kubernetes", help="The Workspaces of a cluster."),
    ] = False,
    namespace: Namespaces = None,
    kubeconfig: Kubeconfig = None,
    host: Host = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.", min=1, max=65535)] = CONSOLE_PORT,
    api_key: Annotated[
        str | None,
        typer.Option(
            envvar="BOSUN_API_KEY",
            help="Require this bearer token on every API the page calls (needed with "
            "--kubernetes).",
        ),
    ] = None,
    log_level: Annotated[
        str, typer.Option(help="critical, error, warning, info or debug.")
    ] = "warning",
) -> None:
    """Serve the web console on its own (a gateway with it, so its playground can chat):
    for a cluster, or for this machine without bosun up's gateway."""
    if local == kubernetes:
        fail("give --local (bosun up's workspaces here) or --kubernetes (a cluster's)")
    gateway(
        replica=None,
        local=local,
        kubernetes=kubernetes,
        namespace=namespace,
        kubeconfig=kubeconfig,
        host=host,
        port=port,
        api_key=api_key,
        log_level=log_level,
    )


def register(app: typer.Typer) -> None:
    app.command()(gateway)
    app.command()(console)
