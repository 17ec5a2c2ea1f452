"""The CEL seam: Kubernetes' DRA environment, quantity and semver libraries, errors."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bosun.devices.cel import (
    CELError,
    CompiledSelector,
    DeviceView,
    compile_selector,
    quantity_value,
    semver_value,
)

GPU = DeviceView(
    driver="gpu.nvidia.com",
    attributes={
        "gpu.nvidia.com": {
            "type": "gpu",
            "productName": "NVIDIA H100 80GB HBM3",
            "index": 3,
            "mig": False,
            "driverVersion": semver_value("580.159.4"),
            "cudaComputeCapability": semver_value("9.0.0"),
        },
        "resource.kubernetes.io": {"pcieRoot": "pci0000:00"},
    },
    capacity={"gpu.nvidia.com": {"memory": quantity_value("80Gi")}},
)


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("device.driver == 'gpu.nvidia.com'", True),
        ("device.attributes['gpu.nvidia.com'].type == 'gpu'", True),
        ("device.attributes['gpu.nvidia.com'].index > 2", True),
        ("device.attributes['resource.kubernetes.io'].pcieRoot == 'pci0000:00'", True),
        ("device.capacity['gpu.nvidia.com'].memory.compareTo(quantity('40Gi')) >= 0", True),
        ("device.capacity['gpu.nvidia.com'].memory.isGreaterThan(quantity('81Gi'))", False),
        ("device.capacity['gpu.nvidia.com'].memory.isLessThan(quantity('100G'))", True),
        ("device.capacity['gpu.nvidia.com'].memory == quantity('81920Mi')", True),
        ("device.capacity['gpu.nvidia.com'].memory.asInteger() == 85899345920", True),
        ("device.capacity['gpu.nvidia.com'].memory.isInteger()", True),
        ("quantity('1.5').isInteger()", False),
        ("quantity('500m').asApproximateFloat() == 0.5", True),
        ("quantity('1Gi').add(quantity('1Gi')) == quantity('2Gi')", True),
        ("quantity('1Gi').sub(quantity('2Gi')).sign() == -1", True),
        ("isQuantity('10Gi') && !isQuantity('ten')", True),
        (
            "device.attributes['gpu.nvidia.com'].driverVersion.isGreaterThan(semver('550.0.0'))",
            True,
        ),
        ("device.attributes['gpu.nvidia.com'].cudaComputeCapability.major() == 9", True),
        ("device.attributes['gpu.nvidia.com'].cudaComputeCapability == semver('9.0.0')", True),
        ("semver('1.0.0-alpha').isLessThan(semver('1.0.0'))", True),
        ("semver('1.2.3').minor() == 2 && semver('1.2.3').patch() == 3", True),
        ("isSemver('1.2.3') && !isSemver('1.2')", True),
        ("'type' in device.attributes['gpu.nvidia.com']", True),
        ("'type' in device.attributes['other.example.com']", False),
        ("device.attributes['gpu.nvidia.com'].exists(k, k == 'mig')", True),
        ("device.allowMultipleAllocations == false", True),
    ],
)
def test_kubernetes_cel_environment(expression: str, expected: bool) -> None:
    assert compile_selector(expression).matches(GPU) is expected


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        (
            "device.attributes['gpu.nvidia.com'].noSuchAttribute == 1",
            "no such key: noSuchAttribute",
        ),
        ("device.attributes['unknown.domain'].x == 'y'", "no such key: x"),
        ("noSuchVar", "undeclared reference to 'noSuchVar'"),
        ("device.attributes['gpu.nvidia.com'].index", "must return bool"),
        ("quantity('lots') == quantity('1')", "not a quantity"),
        ("semver('1.2') == semver('1.2.0')", "invalid semver"),
        ("1 +", "Syntax error"),
    ],
)
def test_errors_are_cel_errors(expression: str, message: str) -> None:
    with pytest.raises(CELError, match=message):
        compile_selector(expression).matches(GPU)


def test_expressions_longer_than_10_kib_are_refused() -> None:
    with pytest.raises(CELError, match="longer than"):
        CompiledSelector("true && " * 2000 + "true")


def test_compiled_once() -> None:
    assert compile_selector("device.driver == 'x'") is compile_selector("device.driver == 'x'")


_values = st.one_of(
    st.integers(-5, 5),
    st.booleans(),
    st.sampled_from(["a", "b"]),
    st.sampled_from(["1.0.0", "2.0.0"]).map(semver_value),
)


@settings(max_examples=60, deadline=None)
@given(
    attrs=st.dictionaries(st.sampled_from(["x", "y", "z"]), _values, max_size=3),
    memory=st.sampled_from(["1Gi", "2Gi", "512Mi"]),
    expression=st.sampled_from(
        [
            "device.attributes['d'].x == 1",
            "'x' in device.attributes['d'] && device.attributes['d'].x == true",
            "device.capacity['d'].memory.compareTo(quantity('1Gi')) > 0",
            "device.attributes['d'].y == 'a' || device.driver == 'd'",
            "device.attributes['d'].exists(k, k == 'z')",
            "size(device.attributes['d']) > 1",
        ]
    ),
)
def test_memoized_fast_path_agrees_with_full_evaluation(
    attrs: dict[str, Any], memory: str, expression: str
) -> None:
    """The reduced, memoized evaluation must give exactly what the whole device gives."""
    device = DeviceView("d", {"d": dict(attrs)}, {"d": {"memory": quantity_value(memory)}})
    fast = CompiledSelector(expression)
    slow = CompiledSelector(expression)
    slow._paths = None  # force evaluation on the whole device

    def outcome(selector: CompiledSelector) -> Any:
        try:
            return selector.matches(device)
        except CELError as exc:
            return type(exc)

    assert outcome(fast) == outcome(slow)
    assert outcome(fast) == outcome(fast)  # the memoized answer is the same
