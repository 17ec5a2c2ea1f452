"""Field checks shared by the Workspace models: names, URIs and network addresses.

Each function raises ``ValueError`` with a message that reads well after the field path
that pydantic puts in front of it.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from dataclasses import dataclass
from urllib.parse import urlsplit

__all__ = [
    "ALLOW_HOSTS_ENV",
    "DNS1123_LABEL",
    "DNS1123_SUBDOMAIN",
    "ParsedUri",
    "check_addresses",
    "check_dns1123_label",
    "check_dns1123_subdomain",
    "check_public_host",
    "is_internal_address",
    "literal_address",
    "parse_allowed_hosts",
    "parse_uri",
]

DNS1123_LABEL = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
DNS1123_SUBDOMAIN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
_LABEL = re.compile(DNS1123_LABEL)
_SUBDOMAIN = re.compile(DNS1123_SUBDOMAIN)

# Names that reach the node itself or a cloud's instance metadata service.
_FORBIDDEN_HOSTS = {
    "localhost",
    "metadata",
    "metadata.google.internal",
    "metadata.azure.com",
    "instance-data",
    "instance-data.ec2.internal",
    "kubernetes",
    "kubernetes.default",
}
# Cluster DNS (Services, Pods), cloud-internal zones, mDNS, and the node itself.
_INTERNAL_SUFFIXES = (
    ".localhost",
    ".svc",
    ".cluster.local",
    ".internal",
    ".local",
    ".localdomain",
    ".home.arpa",
)


def check_dns1123_label(value: str) -> str:
    if len(value) > 63 or not _LABEL.match(value):
        raise ValueError(
            f"{value!r} is not a DNS-1123 label (lower-case letters, digits and '-', "
            "starting and ending with a letter or digit, at most 63 characters)"
        )
    return value


def check_dns1123_subdomain(value: str) -> str:
    if len(value) > 253 or not _SUBDOMAIN.match(value):
        raise ValueError(
            f"{value!r} is not a DNS-1123 subdomain (lower-case letters, digits, '-' and '.', "
            "at most 253 characters)"
        )
    return value


def literal_address(name: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """The address a host name written as a number means, in every notation a resolver
    accepts: dotted quads, but also ``127.1``, ``0x7f.0.0.1``, ``2130706433`` and
    ``0177.0.0.1`` (inet_aton's forms), IPv6 with IPv4 inside. None for a name."""
    text = name.strip("[]").lower().rstrip(".")
    try:
        address = ipaddress.ip_address(text.split("%", 1)[0])
    except ValueError:
        if not re.fullmatch(r"[0-9a-fx.]+", text) or not text[:1].isdigit():
            return None
        try:
            address = ipaddress.IPv4Address(socket.inet_aton(text))
        except OSError:
            return None
    if isinstance(address, ipaddress.IPv6Address):
        inner = address.ipv4_mapped or address.sixtofour
        if inner is not None:
            return inner
    return address


def is_internal_address(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    """Loopback, private, link-local (cloud metadata), reserved, unspecified or multicast."""
    return bool(
        address.is_loopback
        or address.is_private
        or address.is_link_local
        or address.is_reserved
        or address.is_unspecified
        or address.is_multicast
        or not address.is_global
    )


# The edges (the CLI, the operator, the tuning job) read the user's opt-in from here and
# pass it down; the pure core never reads the environment.
ALLOW_HOSTS_ENV = "BOSUN_ALLOW_HOSTS"


def parse_allowed_hosts(raw: str) -> frozenset[str]:
    """Hosts the user opted in to although they are internal (a mirror inside the
    cluster), from ``BOSUN_ALLOW_HOSTS``'s value: comma-separated names or addresses."""
    return frozenset(_host_key(h) for h in raw.split(",") if h.strip())


def _host_key(host: str) -> str:
    return host.strip().strip("[]").lower().rstrip(".")


def check_public_host(host: str, allowed: frozenset[str] = frozenset()) -> None:
    """Reject hosts that point at loopback, private, link-local or cloud-metadata addresses,
    written in any notation, and names that only resolve inside a cluster or a cloud.
    ``allowed`` names hosts the user opted in to (:func:`parse_allowed_hosts`).

    No DNS here (the pure core): the edge that fetches or renders the URL resolves the
    name and passes what it found to :func:`check_addresses`.
    """
    name = _host_key(host)
    if not name:
        raise ValueError("the URL has no host")
    if name in allowed:
        return
    if name in _FORBIDDEN_HOSTS or name.endswith(_INTERNAL_SUFFIXES):
        raise ValueError(
            f"host {host!r} only resolves inside this machine, a cluster or a cloud's "
            f"metadata service; sources must be reachable public URLs ({ALLOW_HOSTS_ENV}="
            f"{name} allows it)"
        )
    address = literal_address(name)
    if address is not None and is_internal_address(address):
        raise ValueError(
            f"host {host!r} is a loopback, private, link-local or metadata address "
            f"({address}); sources must be reachable public URLs ({ALLOW_HOSTS_ENV}="
            f"{name} allows it)"
        )


def check_addresses(host: str, addresses: list[str], allowed: frozenset[str] = frozenset()) -> None:
    """Reject ``host`` when a name resolved to any internal address (``addresses``: what
    the resolver answered), unless the user opted in to it."""
    if _host_key(host) in allowed:
        return
    for text in addresses:
        address = literal_address(text)
        if address is not None and is_internal_address(address):
            raise ValueError(
                f"host {host} resolves to {address}, a loopback, private, link-local or "
                f"metadata address ({ALLOW_HOSTS_ENV}={_host_key(host)} allows it)"
            )


@dataclass(frozen=True)
class ParsedUri:
    """A source or destination URI, split into what Bosun needs."""

    scheme: str
    authority: str  # hf: organisation; pvc: claim name; http(s): host[:port]
    path: str  # without a leading '/', except for file:// where it is absolute
    raw: str

    @property
    def hostname(self) -> str:
        """The host of an http(s) URL, without port or brackets."""
        return urlsplit(self.raw).hostname or ""

    @property
    def hf_repo(self) -> str:
        """``org/name`` for an ``hf://org/name`` URI."""
        return f"{self.authority}/{self.path}" if self.path else self.authority


SCHEMES = {
    "hf": "hf://ORG/NAME (a Hugging Face repository)",
    "file": "file:///ABSOLUTE/PATH",
    "pvc": "pvc://CLAIM/PATH (a PersistentVolumeClaim in the Workspace's namespace)",
    "http": "http://HOST/PATH",
    "https": "https://HOST/PATH",
    "oci": "oci://REGISTRY/REPOSITORY:TAG",
}


def parse_uri(value: str, allowed: tuple[str, ...]) -> ParsedUri:
    """Parse ``value`` and check it uses one of the ``allowed`` schemes, correctly formed."""
    parts = urlsplit(value)
    scheme = parts.scheme.lower()
    if scheme not in allowed:
        forms = "; ".join(SCHEMES[s] for s in allowed)
        raise ValueError(f"unsupported URI {value!r}: use one of {forms}")
    path = parts.path
    if scheme == "file":
        if parts.netloc or not path.startswith("/"):
            raise ValueError(f"{value!r}: a file URI needs an absolute path, as file:///data/x")
        if any(part in (".", "..") for part in path.split("/")):
            raise ValueError(f"{value!r}: '.' and '..' are not allowed in the path")
        return ParsedUri(scheme, "", path, value)
    if not parts.netloc:
        raise ValueError(f"{value!r}: the URI has no {'host' if 'http' in scheme else 'name'}")
    path = path.lstrip("/")
    if any(part in (".", "..") for part in path.split("/")):
        raise ValueError(f"{value!r}: '.' and '..' are not allowed in the path")
    if scheme == "hf":
        if path.count("/") != 0 or not path:
            raise ValueError(f"{value!r}: a Hugging Face URI is hf://ORG/NAME")
    elif scheme == "pvc":
        check_dns1123_subdomain(parts.netloc)
    elif scheme in ("http", "https") and not parts.hostname:
        raise ValueError(f"{value!r}: the URL has no host")
    return ParsedUri(scheme, parts.netloc, path, value)
