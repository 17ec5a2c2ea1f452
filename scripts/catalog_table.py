"""Write the table of every preset on its recommended instance type into docs/sizing.md,
the plan and its arithmetic side by side (tests/catalog/test_catalog_table.py checks that
the document is current; run this after changing the catalog or a sizing rule).

The recommended instance type is the one with the least GPU memory per node (then the
fewest GPUs, then the catalog's order) on which one node serves the preset at its default
context.

    python scripts/catalog_table.py [--check]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from bosun.api import preset_workspace
from bosun.api.quantity import format_bytes
from bosun.catalog import Plan, all_instance_types, all_presets, get_profile, plan_workspace
from bosun.catalog.accelerators import InstanceType
from bosun.catalog.sizing import WEIGHT_LOAD_GROWTH

DOC = Path(__file__).resolve().parents[1] / "docs" / "sizing.md"
START = "<!-- catalog-table:start (scripts/catalog_table.py writes this part) -->"
END = "<!-- catalog-table:end -->"
GIB = 2**30


def _by_size() -> list[InstanceType]:
    """Instance types by GPU memory per node, then GPU count; ties keep the catalog's order,
    which lists each family's smallest (cheapest) size first."""
    types = all_instance_types()
    return sorted(
        types,
        key=lambda t: (get_profile(t.profile).memory_bytes * t.count, t.count, types.index(t)),
    )


def recommended(name: str) -> Plan | None:
    """The plan on the smallest instance type one node of which serves ``name``."""
    ws = preset_workspace(name, name[:63])
    for itype in _by_size():
        plan = plan_workspace(ws, instance_type=itype.name)
        if plan.fits and plan.nodes_per_replica == 1:
            return plan
    return None


def _gib(value: float) -> str:
    return f"{value / GIB:.2f}"


def row(name: str) -> str:
    plan = recommended(name)
    if plan is None or plan.spec is None or plan.instance_type is None:
        return f"| {name} | none: more than one node of any type | | | | |"
    spec, m = plan.spec, plan.memory
    devices = plan.devices_per_replica
    weights_dev = m.per_device_bytes - m.kv_cache_bytes / devices
    weights_dev -= m.activation_bytes + m.overhead_bytes
    fmt = plan.quantization if plan.quantization != "none" else plan.dtype
    # A hybrid's linear-attention state: fixed per sequence (one sequence by default).
    state = spec.state_bytes_per_sequence(4 if plan.dtype == "float32" else 2)
    kv = m.kv_cache_bytes - state
    kv_terms = f"{format_bytes(kv / plan.max_model_len)}/token x {plan.max_model_len:,}"
    if state:
        kv_terms = f"({kv_terms} + {format_bytes(state)} state)"
    # Tensors each tensor-parallel rank keeps whole (MLA's latent down-projections, routers).
    whole = weights_dev - spec.weight_bytes * WEIGHT_LOAD_GROWTH / devices
    kept = (
        f" + {_gib(whole)} kept whole"
        if plan.tensor_parallel_size > 1 and whole > GIB / 200
        else ""
    )
    arithmetic = (
        f"{spec.parameters / 1e9:.2f}B params in {fmt} = {_gib(spec.weight_bytes)} GiB "
        f"x {WEIGHT_LOAD_GROWTH} / {devices}{kept} = {_gib(weights_dev)}; KV "
        f"{kv_terms} / {devices} = {_gib(m.kv_cache_bytes / devices)}; "
        f"+ {_gib(m.activation_bytes)} activations + {_gib(m.overhead_bytes)} runtime"
    )
    layout = f"{devices} x {plan.accelerator.name} (tp {plan.tensor_parallel_size})"
    return (
        f"| {name} | {plan.instance_type.name} | {layout} | "
        f"{_gib(m.per_device_bytes)} of {_gib(m.usable_bytes)} | {plan.max_model_len:,} | "
        f"{arithmetic} |"
    )


def table() -> str:
    lines = [
        "| preset | instance type | devices | GiB per device (need of usable) | context "
        "| arithmetic (GiB) |",
        "|---|---|---|---|---|---|",
    ]
    lines += [row(p.name) for p in all_presets()]
    return "\n".join(lines)


def rendered(text: str) -> str:
    head, _, rest = text.partition(START)
    _, _, tail = rest.partition(END)
    return f"{head}{START}\n{table()}\n{END}{tail}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="Exit 1 if the doc is stale.")
    args = parser.parse_args(argv)
    text = DOC.read_text(encoding="utf-8")
    if START not in text or END not in text:
        print(f"{DOC}: the markers {START!r} and {END!r} are missing", file=sys.stderr)
        return 1
    new = rendered(text)
    if args.check:
        if new != text:
            print(f"{DOC} is stale: run python scripts/catalog_table.py", file=sys.stderr)
            return 1
        return 0
    DOC.write_text(new, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
