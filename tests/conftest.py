"""Shared fixtures: the bundled examples and a Workspace builder."""

from __future__ import annotations

import copy
import os
from pathlib import Path
from typing import Any

import pytest
import yaml

# Triton kernels (the GPU decode path) run under Triton's interpreter on this CPU. Set
# before anything imports triton.language: peft and transformers import it at collection.
os.environ.setdefault("TRITON_INTERPRET", "1")

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
EXAMPLE_FILES = sorted(EXAMPLES.glob("*.yaml")) + sorted(EXAMPLES.glob("*/workspace.yaml"))


def example_data(name: str) -> dict[str, Any]:
    """The decoded example whose file name starts with ``name``."""
    matches = [p for p in EXAMPLE_FILES if p.relative_to(EXAMPLES).as_posix().startswith(name)]
    assert len(matches) == 1, f"no single example named {name}: {matches}"
    data: dict[str, Any] = yaml.safe_load(matches[0].read_text(encoding="utf-8"))
    return data


def workspace_data(**spec: Any) -> dict[str, Any]:
    """A minimal valid Workspace document, with ``spec`` merged in."""
    base: dict[str, Any] = {
        "apiVersion": "bosun.dev/v1alpha1",
        "kind": "Workspace",
        "metadata": {"name": "test"},
        "spec": {"inference": {"preset": {"name": "llama-3.1-8b-instruct"}}},
    }
    base["spec"].update(copy.deepcopy(spec))
    return base


@pytest.fixture(params=EXAMPLE_FILES, ids=lambda p: p.relative_to(EXAMPLES).as_posix())
def example_file(request: pytest.FixtureRequest) -> Path:
    path: Path = request.param
    return path
