"""How a Bosun process reaches the API server: the operator, and the gateway in a
cluster. No kopf here: the gateway imports this without the operator's framework."""

from __future__ import annotations

import os
from pathlib import Path

from kubernetes.aio import config as kube_config
from kubernetes.aio.client import Configuration

from bosun.api.errors import BosunError

__all__ = ["SERVICE_TOKEN", "load_configuration"]

SERVICE_TOKEN = Path("/var/run/secrets/kubernetes.io/serviceaccount/token")
PROXY_VARIABLES = ("HTTPS_PROXY", "HTTP_PROXY", "ALL_PROXY", "NO_PROXY")


async def load_configuration(kubeconfig: Path | None) -> Configuration:
    """The API server's address and credentials: ``kubeconfig`` when given, the pod's
    service account inside a cluster, else ``$KUBECONFIG`` or ``~/.kube/config``."""
    configuration = Configuration()
    try:
        if kubeconfig is None and SERVICE_TOKEN.exists():
            kube_config.load_incluster_config(client_configuration=configuration)
        else:
            await kube_config.load_kube_config(
                config_file=str(kubeconfig) if kubeconfig else os.environ.get("KUBECONFIG"),
                client_configuration=configuration,
                persist_config=False,
            )
    except (OSError, kube_config.ConfigException) as exc:
        where = f"--kubeconfig {kubeconfig}" if kubeconfig else "the kubeconfig"
        raise BosunError(f"{where}: cannot load it: {exc}") from None
    # The client's aiohttp session trusts the environment by default: it then looks for
    # proxies and reads ~/.netrc in a thread for every request (a tenth of the operator's
    # time at 1,000 Workspaces). Only where proxy variables are set is that worth it.
    configuration.client_session_kwargs = {"trust_env": _proxied()}
    return configuration


def _proxied() -> bool:
    return any(os.environ.get(v) or os.environ.get(v.lower()) for v in PROXY_VARIABLES)
