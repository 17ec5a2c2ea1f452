"""docs/sizing.md's table of every preset on its recommended instance type is generated
(scripts/catalog_table.py) and must match what the catalog and the rules give today."""

from __future__ import annotations

import importlib.util
from types import ModuleType

import pytest

from tests.conftest import ROOT


def _script() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "catalog_table", ROOT / "scripts" / "catalog_table.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_documented_table_is_current(capsys: pytest.CaptureFixture[str]) -> None:
    assert _script().main(["--check"]) == 0, capsys.readouterr().err


def test_every_preset_has_a_row_with_its_plan() -> None:
    script = _script()
    table = script.table()
    from bosun.catalog import all_presets

    for preset in all_presets():
        assert f"| {preset.name} |" in table
    # The row's figures are the plan's: gpt-oss-120b on one 80 GB H100, as OpenAI says.
    plan = script.recommended("gpt-oss-120b")
    assert plan is not None and plan.devices_per_replica == 1
    assert plan.accelerator.name == "nvidia-h100-80gb"
