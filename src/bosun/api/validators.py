"""Field checks shared by the Workspace models: names, URIs and network addresses.

Each function raises ``ValueError`` with a message that reads well after the field path
that pydantic puts in front of it.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from urllib.parse import urlsplit

__all__ = [
    "DNS1123_LABEL",
    "DNS1123_SUBDOMAIN",
    "ParsedUri",
    "check_dns1123_label",
    "check_dns1123_subdomain",
    "check_public_host",
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
}


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


def check_public_host(host: str) -> None:
    """Reject hosts that point at loopback, private, link-local or cloud-metadata addresses.

    Only literal addresses and well-known names are checked here (the pure core does no
    DNS); whatever fetches the URL must check the resolved address again.
    """
    name = host.strip("[]").lower().rstrip(".")
    if not name:
        raise ValueError("the URL has no host")
    if name in _FORBIDDEN_HOSTS or name.endswith(".localhost"):
        raise ValueError(f"host {host!r} points at this machine or a metadata service")
    try:
        address = ipaddress.ip_address(name)
    except ValueError:
        return
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        address = address.ipv4_mapped
    if (
        address.is_loopback
        or address.is_private
        or address.is_link_local
        or address.is_reserved
        or address.is_unspecified
        or address.is_multicast
    ):
        raise ValueError(
            f"host {host!r} is a loopback, private, link-local or metadata address; "
            "sources must be reachable public URLs"
        )


@dataclass(frozen=True)
class ParsedUri:
    """A source or destination URI, split into what Bosun needs."""

    scheme: str
    authority: str  # hf: organisation; pvc: claim name; http(s): host[:port]
    path: str  # without a leading '/', except for file:// where it is absolute
    raw: str

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
        return ParsedUri(scheme, "", path, value)
    if not parts.netloc:
        raise ValueError(f"{value!r}: the URI has no {'host' if 'http' in scheme else 'name'}")
    path = path.lstrip("/")
    if scheme == "hf":
        if path.count("/") != 0 or not path:
            raise ValueError(f"{value!r}: a Hugging Face URI is hf://ORG/NAME")
    elif scheme == "pvc":
        check_dns1123_subdomain(parts.netloc)
    elif scheme in ("http", "https"):
        check_public_host(parts.hostname or "")
    return ParsedUri(scheme, parts.netloc, path, value)
