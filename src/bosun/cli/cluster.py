"""The cluster commands: ``bosun install`` prints what runs the operator, ``bosun operator``
runs it."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from bosun.cli.output import Format, dump, fail

__all__ = ["check_namespace", "install", "operator", "register"]

NamespaceOpt = Annotated[
    str | None, typer.Option("--namespace", "-n", help="Watch Workspaces in this namespace only.")
]


def check_namespace(namespace: str, option: str = "--namespace") -> None:
    from bosun.api.validators import check_dns1123_label

    try:
        check_dns1123_label(namespace)
    except ValueError as exc:
        fail(f"{option}: {exc}")


def install(
    namespace: Annotated[
        str, typer.Option("--namespace", "-n", help="Namespace the operator runs in.")
    ] = "bosun-system",
    image: Annotated[str | None, typer.Option(help="The operator image.")] = None,
    gateway_image: Annotated[str | None, typer.Option(help="The gateway image.")] = None,
) -> None:
    """Print the CRDs, RBAC, the operator's and the gateway's Deployments (kubectl apply
    --server-side -f -)."""
    from bosun.render.install import GATEWAY_IMAGE, OPERATOR_IMAGE, install_manifests

    check_namespace(namespace)
    objects = install_manifests(namespace, image or OPERATOR_IMAGE, gateway_image or GATEWAY_IMAGE)
    dump(objects, Format.YAML)


def operator(
    namespace: Annotated[
        list[str] | None,
        typer.Option("--namespace", "-n", help="Watch this namespace (repeatable)."),
    ] = None,
    all_namespaces: Annotated[
        bool, typer.Option("--all-namespaces", "-A", help="Watch every namespace.")
    ] = False,
    kubeconfig: Annotated[
        Path | None,
        typer.Option(help="A kubeconfig file (default: in-cluster, then $KUBECONFIG)."),
    ] = None,
    health_port: Annotated[int, typer.Option(min=1, max=65535, help="/healthz port.")] = 8080,
    metrics_port: Annotated[
        int, typer.Option(min=0, max=65535, help="/metrics port (0: off).")
    ] = 8081,
    priority: Annotated[
        int | None,
        typer.Option(help="Peering priority; the highest of several replicas acts."),
    ] = None,
    peering: Annotated[
        bool, typer.Option(help="Coordinate with other replicas (kopf peering).")
    ] = True,
    vllm_image: Annotated[str | None, typer.Option(help="Image of the vllm runtime.")] = None,
    bosun_image: Annotated[str | None, typer.Option(help="Image of the bosun runtime.")] = None,
) -> None:
    """Run the operator: reconcile Workspaces on the cluster until stopped."""
    from bosun.api.errors import BosunError

    namespaces = tuple(namespace or ())
    if all_namespaces and namespaces:
        fail("--namespace and --all-namespaces are exclusive")
    if not all_namespaces and not namespaces:
        fail("say which Workspaces to watch: --namespace NS (repeatable) or --all-namespaces")
    for ns in namespaces:
        check_namespace(ns)
    if kubeconfig is not None and not kubeconfig.is_file():
        fail(f"--kubeconfig: {kubeconfig} is not a file")
    from bosun.cli.environment import allowed_hosts

    try:
        from bosun.operator.main import OperatorOptions, run
        from bosun.render import RenderOptions
    except ImportError as exc:
        fail(
            f"bosun operator needs the operator extra: pip install 'bosun[operator]' "
            f"({exc.name} is missing)"
        )
    defaults = RenderOptions()
    images = RenderOptions(
        vllm_image=vllm_image or defaults.vllm_image,
        bosun_image=bosun_image or defaults.bosun_image,
        allowed_hosts=allowed_hosts(),
    )
    options = OperatorOptions(
        namespaces=namespaces,
        kubeconfig=kubeconfig,
        health_port=health_port,
        metrics_port=metrics_port,
        priority=priority,
        peering=peering,
        images=images,
    )
    try:
        run(options)
    except BosunError as exc:
        fail(str(exc))


def register(app: typer.Typer) -> None:
    app.command()(install)
    app.command()(operator)
