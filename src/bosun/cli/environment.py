"""What the command line takes from the environment and hands to the pure core."""

from __future__ import annotations

import os

from bosun.api.validators import ALLOW_HOSTS_ENV, parse_allowed_hosts

__all__ = ["allowed_hosts"]


def allowed_hosts() -> frozenset[str]:
    """Internal hosts the user opted in to as sources (``BOSUN_ALLOW_HOSTS``)."""
    return parse_allowed_hosts(os.environ.get(ALLOW_HOSTS_ENV, ""))
