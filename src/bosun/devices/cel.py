"""The CEL seam: device selectors evaluated the way Kubernetes evaluates them.

Everything about CEL lives in this module, over the ``common-expression-language``
library. It adds what Kubernetes adds to plain CEL for DRA:

- ``device.driver``, ``device.attributes[DOMAIN][ID]``, ``device.capacity[DOMAIN][ID]``,
  ``device.allowMultipleAllocations``; an unknown domain is an empty map, an unknown id is
  a runtime error (``no such key: ID``).
- The ``quantity`` library (``quantity()``, ``isQuantity``, ``compareTo``,
  ``isGreaterThan``, ``isLessThan``, ``add``, ``sub``, ``asInteger``, ``isInteger``,
  ``asApproximateFloat``, ``sign``) and the ``semver`` library (``semver()``, ``isSemver``,
  ``compareTo``, ``isGreaterThan``, ``isLessThan``, ``major``, ``minor``, ``patch``);
  version attributes are semver values. Values of both are canonical maps, so ``==``
  compares them by value.
- Each expression is compiled once. Every compile or runtime error raises
  :class:`CELError`; the allocator treats it as fatal for the whole allocation.

Speed: converting a device to CEL values costs far more than evaluating an expression, so
an expression that reads the device only through literal paths
(``device.attributes['d'].x``, ``device.capacity['d']['y']``, ``device.driver``) is
evaluated on just those values and its result memoized by them. Others see the whole
device. Both give the same answer by construction.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from functools import cache, lru_cache
from typing import Any, Protocol

import cel as _cel

from bosun.api.quantity import parse_quantity

__all__ = [
    "MISSING",
    "CELError",
    "CelDevice",
    "CompiledSelector",
    "DeviceView",
    "compile_selector",
    "quantity_value",
    "semver_value",
]

MAX_EXPRESSION_LENGTH = 10 * 1024
_Q, _V = "__quantity__", "__semver__"


class CELError(Exception):
    """A CEL expression that does not compile or fails while evaluating."""


# --------------------------------------------------------------------------- values


def _canonical(d: Decimal) -> str:
    if d == d.to_integral_value():
        return str(int(d))
    return format(d.normalize(), "f")


@lru_cache(maxsize=4096)
def _quantity_text(text: str | int) -> str:
    # A cluster's devices repeat a few capacities ("80Gi"), and parsing one takes ~10 us.
    return _canonical(parse_quantity(text))


def quantity_value(text: str | int) -> dict[str, str]:
    """A Kubernetes quantity as a CEL value."""
    return {_Q: _quantity_text(text)}


_SEMVER = re.compile(
    r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)"
    r"(?:-((?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*)(?:\.(?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*))*))?"
    r"(?:\+([0-9a-zA-Z-]+(?:\.[0-9a-zA-Z-]+)*))?$"
)


@lru_cache(maxsize=4096)
def _semver_ok(text: str) -> bool:
    return _SEMVER.match(text) is not None


def semver_value(text: str) -> dict[str, str]:
    """A semantic version (2.0.0, strict) as a CEL value."""
    if not _semver_ok(text):
        raise CELError(f"invalid semver: {text!r}")
    return {_V: text}


def _quantity_of(value: Any) -> Decimal:
    if isinstance(value, Mapping) and _Q in value:
        return Decimal(value[_Q])
    if isinstance(value, int) and not isinstance(value, bool):
        return Decimal(value)
    raise CELError(f"expected a quantity, got {value!r}")


def _semver_key(value: Any) -> tuple[Any, ...]:
    if not (isinstance(value, Mapping) and _V in value):
        raise CELError(f"expected a semver value, got {value!r}")
    m = _SEMVER.match(value[_V])
    assert m is not None
    pre = m.group(4)
    # Pre-releases sort before the release; identifiers compare numerically or lexically.
    pre_key: tuple[Any, ...] = (1,)
    if pre:
        pre_key = (0, *[(0, int(p), "") if p.isdigit() else (1, 0, p) for p in pre.split(".")])
    return (int(m.group(1)), int(m.group(2)), int(m.group(3)), pre_key)


def _cmp(a: Any, b: Any) -> int:
    return int(a > b) - int(a < b)


def _q(text: Any) -> dict[str, str]:
    if not isinstance(text, str):
        raise CELError(f"quantity() takes a string, got {text!r}")
    try:
        return quantity_value(text)
    except (ValueError, InvalidOperation) as exc:
        raise CELError(str(exc)) from None


def _is_quantity(text: Any) -> bool:
    try:
        parse_quantity(text)
    except (ValueError, InvalidOperation, TypeError):
        return False
    return True


def _compare(a: Any, b: Any) -> int:
    if isinstance(a, Mapping) and _V in a:
        return _cmp(_semver_key(a), _semver_key(b))
    return _cmp(_quantity_of(a), _quantity_of(b))


def _as_integer(a: Any) -> int:
    d = _quantity_of(a)
    if d != d.to_integral_value() or abs(d) > 2**63 - 1:
        raise CELError("cannot convert value to integer")
    return int(d)


def _semver_part(index: int) -> Callable[[Any], int]:
    def part(v: Any) -> int:
        return int(_semver_key(v)[index])

    return part


def _is_semver(text: Any) -> bool:
    return isinstance(text, str) and bool(_SEMVER.match(text))


def _semver_fn(text: Any) -> dict[str, str]:
    if not isinstance(text, str):
        raise CELError(f"semver() takes a string, got {text!r}")
    return semver_value(text)


_FUNCTIONS: dict[str, Callable[..., Any]] = {
    "quantity": _q,
    "isQuantity": _is_quantity,
    "compareTo": _compare,
    "isGreaterThan": lambda a, b: _compare(a, b) > 0,
    "isLessThan": lambda a, b: _compare(a, b) < 0,
    "add": lambda a, b: {_Q: _canonical(_quantity_of(a) + _quantity_of(b))},
    "sub": lambda a, b: {_Q: _canonical(_quantity_of(a) - _quantity_of(b))},
    "asInteger": _as_integer,
    "isInteger": lambda a: (d := _quantity_of(a)) == d.to_integral_value(),
    "asApproximateFloat": lambda a: float(_quantity_of(a)),
    "sign": lambda a: _cmp(_quantity_of(a), 0),
    "semver": _semver_fn,
    "isSemver": _is_semver,
    "major": _semver_part(0),
    "minor": _semver_part(1),
    "patch": _semver_part(2),
}


# --------------------------------------------------------------------------- devices


MISSING: Any = object()  # what CelDevice.value gives for a path the device lacks


class CelDevice(Protocol):
    """A device as a selector reads it: one value by its path (what a selector that names
    its paths reads, memoized), or the whole device as CEL sees it."""

    @property
    def driver(self) -> str: ...

    @property
    def allow_multiple_allocations(self) -> bool: ...

    def value(self, kind: str, domain: str, ident: str) -> Any:
        """``attributes`` or ``capacity`` [domain][ident], converted; or MISSING."""
        ...

    def whole(self) -> dict[str, Any]:
        """``{"driver", "attributes", "capacity", "allowMultipleAllocations"}``."""
        ...


@dataclass
class DeviceView:
    """A device as CEL sees it (a :class:`CelDevice`): attributes and capacity by domain,
    already converted."""

    driver: str
    attributes: dict[str, dict[str, Any]]
    capacity: dict[str, dict[str, Any]]
    allow_multiple_allocations: bool = False
    _whole: dict[str, Any] | None = field(default=None, repr=False)

    def value(self, kind: str, domain: str, ident: str) -> Any:
        table = self.attributes if kind == "attributes" else self.capacity
        return table.get(domain, {}).get(ident, MISSING)

    def whole(self) -> dict[str, Any]:
        if self._whole is None:
            self._whole = {
                "driver": self.driver,
                "attributes": self.attributes,
                "capacity": self.capacity,
                "allowMultipleAllocations": self.allow_multiple_allocations,
            }
        return self._whole


def qualified(name: str, driver: str) -> tuple[str, str]:
    """Split a QualifiedName into (domain, id); a bare id belongs to the driver's domain."""
    domain, sep, ident = name.rpartition("/")
    return (domain, ident) if sep else (driver, name)


# A literal path into the device: device.attributes['d'].id, device.capacity["d"]["id"] ...
_STR = r"""(?:'((?:[^'\\]|\\.)*)'|"((?:[^"\\]|\\.)*)")"""
_PATH = re.compile(
    rf"device\s*\.\s*(attributes|capacity)\s*\[\s*{_STR}\s*\]"
    rf"(?:\s*\.\s*([A-Za-z_][A-Za-z0-9_]*)\b(?!\s*\()|\s*\[\s*{_STR}\s*\])"
)
_SCALAR = re.compile(r"device\s*\.\s*(driver|allowMultipleAllocations)\b")
_LITERALS = re.compile(_STR)


@dataclass(frozen=True)
class _Path:
    kind: str  # attributes | capacity | driver | allowMultipleAllocations
    domain: str = ""
    ident: str = ""


def _analyse(expression: str) -> tuple[tuple[_Path, ...] | None, tuple[str, ...]]:
    """(literal paths the expression reads, or None if it reads the device otherwise;
    every string literal, to pre-populate unknown domains as empty maps)."""
    paths: list[_Path] = []
    rest = expression
    for m in _PATH.finditer(expression):
        domain = m.group(2) if m.group(2) is not None else m.group(3)
        ident = m.group(4) or (m.group(5) if m.group(5) is not None else m.group(6))
        paths.append(_Path(m.group(1), domain, ident))
    rest = _PATH.sub(" ", rest)
    for m in _SCALAR.finditer(rest):
        paths.append(_Path(m.group(1)))
    rest = _SCALAR.sub(" ", rest)
    literals = tuple(
        m.group(1) if m.group(1) is not None else m.group(2) for m in _LITERALS.finditer(expression)
    )
    if re.search(r"\bdevice\b", _LITERALS.sub("''", rest)):
        return None, literals  # some other use of `device`: evaluate on the whole device
    return tuple(dict.fromkeys(paths)), literals


class CompiledSelector:
    """One CEL selector, compiled once, evaluated against many devices."""

    def __init__(self, expression: str) -> None:
        if len(expression) > MAX_EXPRESSION_LENGTH:
            raise CELError(f"expression is longer than {MAX_EXPRESSION_LENGTH} bytes")
        self.expression = expression
        try:
            self._program = _cel.compile(expression)
        except (ValueError, RuntimeError) as exc:
            raise CELError(_clean(str(exc))) from None
        self._paths, self._literals = _analyse(expression)
        self._memo: dict[tuple[Any, ...], bool] = {}

    def _key(self, device: CelDevice) -> tuple[Any, ...]:
        assert self._paths is not None
        key: list[Any] = []
        for p in self._paths:
            if p.kind == "driver":
                key.append(device.driver)
            elif p.kind == "allowMultipleAllocations":
                key.append(device.allow_multiple_allocations)
            else:
                key.append(_freeze(device.value(p.kind, p.domain, p.ident)))
        return tuple(key)

    def _reduced(self, device: CelDevice) -> dict[str, Any]:
        assert self._paths is not None
        view: dict[str, Any] = {
            "driver": device.driver,
            "allowMultipleAllocations": device.allow_multiple_allocations,
            "attributes": {},
            "capacity": {},
        }
        for p in self._paths:
            if p.kind in ("attributes", "capacity"):
                domain = view[p.kind].setdefault(p.domain, {})
                value = device.value(p.kind, p.domain, p.ident)
                if value is not MISSING:
                    domain[p.ident] = value
        return view

    def matches(self, device: CelDevice) -> bool:
        """Whether the device satisfies the expression; :class:`CELError` on any error."""
        if self._paths is not None:
            key = self._key(device)
            cached = self._memo.get(key)
            if cached is not None:
                return cached
            result = self._evaluate(self._reduced(device))
            self._memo[key] = result
            return result
        whole = device.whole()
        missing = [d for d in self._literals if d not in whole["attributes"]]
        if missing or any(d not in whole["capacity"] for d in self._literals):
            whole = {
                **whole,
                "attributes": {**{d: {} for d in self._literals}, **whole["attributes"]},
                "capacity": {**{d: {} for d in self._literals}, **whole["capacity"]},
            }
        return self._evaluate(whole)

    def _evaluate(self, device: dict[str, Any]) -> bool:
        context = _context()
        context.add_variable("device", device)
        try:
            result = self._program.execute(context)
        except KeyError as exc:
            raise CELError(f"no such key: {exc.args[0]}") from None
        except CELError:
            raise
        except Exception as exc:  # the library raises several types; all are CEL errors
            raise CELError(_clean(str(exc))) from None
        if not isinstance(result, bool):
            raise CELError(f"expression must return bool, got {type(result).__name__}")
        return result


def _freeze(value: Any) -> Any:
    if isinstance(value, dict):
        return tuple(sorted(value.items()))
    return value


def _clean(message: str) -> str:
    m = re.search(r"Undefined variable or function: '([^']+)'", message)
    if m:
        return f"undeclared reference to '{m.group(1)}'"
    return message.splitlines()[0] if message else "CEL error"


@cache
def _context() -> Any:
    context = _cel.Context()
    for name, fn in _FUNCTIONS.items():
        context.add_function(name, fn)
    return context


@cache
def compile_selector(expression: str) -> CompiledSelector:
    """The compiled form of ``expression``, shared by every caller (compiled once)."""
    return CompiledSelector(expression)


def attribute_value(kind: str, value: Any) -> Any:
    """A DRA attribute value as CEL sees it (versions become semver values)."""
    if kind == "version":
        return semver_value(str(value))
    return value


def capacity_value(quantity: str | int) -> dict[str, str]:
    return quantity_value(quantity)
