"""Kubernetes resource quantities (``80Gi``, ``500m``, ``1e3``) parsed exactly.

Kubernetes' own parser lives in the ``kubernetes`` client, which the pure core may not
import; the grammar is small and fixed (``k8s.io/apimachinery/pkg/api/resource``), so it
is reproduced here with :class:`decimal.Decimal` for exact arithmetic.
"""

from __future__ import annotations

import math
import re
from decimal import Decimal, InvalidOperation

__all__ = ["QUANTITY_PATTERN", "format_bytes", "parse_quantity", "to_bytes"]

# The pattern Kubernetes publishes for int-or-string quantities in CRD schemas.
QUANTITY_PATTERN = (
    r"^(\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))"
    r"(([KMGTPE]i)|[numkMGTPE]|([eE](\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))))?$"
)
_RE = re.compile(QUANTITY_PATTERN)

_BINARY = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60}
_DECIMAL = {
    "n": Decimal("1e-9"),
    "u": Decimal("1e-6"),
    "m": Decimal("1e-3"),
    "": Decimal(1),
    "k": Decimal("1e3"),
    "M": Decimal("1e6"),
    "G": Decimal("1e9"),
    "T": Decimal("1e12"),
    "P": Decimal("1e15"),
    "E": Decimal("1e18"),
}


def parse_quantity(value: str | int | float) -> Decimal:
    """Parse a Kubernetes quantity into an exact decimal; raise ``ValueError`` if malformed."""
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not a quantity")
    if isinstance(value, int | float):
        return Decimal(str(value))
    text = value.strip()
    match = _RE.match(text)
    if not match:
        raise ValueError(f"{value!r} is not a quantity (expected forms like 16Gi, 500m, 2)")
    number_end = match.end(2)
    number, suffix = text[:number_end], text[number_end:]
    if match.group(1):
        number = match.group(1) + text[len(match.group(1)) : number_end]
    try:
        base = Decimal(number)
    except InvalidOperation as exc:  # pragma: no cover - the regex already checked
        raise ValueError(f"{value!r} is not a quantity") from exc
    if suffix in _BINARY:
        return base * _BINARY[suffix]
    if suffix in _DECIMAL:
        return base * _DECIMAL[suffix]
    return base * Decimal(10) ** int(suffix[1:])  # exponent form: 1e3


def to_bytes(value: str | int) -> int:
    """A memory quantity in whole bytes (rounded up, as the kubelet does)."""
    return math.ceil(parse_quantity(value))


def format_bytes(n: float) -> str:
    """Bytes in binary units for humans: ``16.06 GiB``."""
    for unit, size in (("TiB", 2**40), ("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if abs(n) >= size:
            return f"{n / size:.2f} {unit}"
    return f"{int(n)} B"
