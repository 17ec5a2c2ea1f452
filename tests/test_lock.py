"""The dev and CI lock (constraints/*.lock) agrees with pyproject.toml, and this
environment is the locked one: a dependency changed without `make lock`, or a package
installed past the lock, fails here before it turns a fresh clone red."""

from __future__ import annotations

import importlib.util
import shutil
import sys
from pathlib import Path
from types import ModuleType

import pytest

from tests.conftest import ROOT


def _lock_script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bosun_lock", ROOT / "scripts" / "lock.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


lock = _lock_script()


def test_the_locks_were_made_from_todays_pyproject_and_constraints() -> None:
    assert lock.problems(lock.Files(ROOT)) == []


def test_every_locked_package_is_pinned_to_one_version() -> None:
    text = (ROOT / "constraints" / "dev.lock").read_text(encoding="utf-8")
    requirements = [
        line for line in text.splitlines() if line and not line.startswith(("#", " ", "--"))
    ]
    assert len(requirements) > 50
    assert all(lock.PIN.match(line) for line in requirements), requirements


@pytest.fixture
def copy(tmp_path: Path) -> Path:
    """The lock's inputs and outputs in a scratch checkout, to change without harm."""
    shutil.copy(ROOT / "pyproject.toml", tmp_path)
    shutil.copytree(ROOT / "constraints", tmp_path / "constraints")
    return tmp_path


def test_a_dependency_changed_without_make_lock_is_named(copy: Path) -> None:
    pyproject = copy / "pyproject.toml"
    pyproject.write_text(
        pyproject.read_text(encoding="utf-8").replace('"pydantic>=2.7,<3"', '"pydantic>=99"'),
        encoding="utf-8",
    )
    found = lock.problems(lock.Files(copy))
    assert any("dev.lock was made from other inputs" in p for p in found), found
    assert any(p.startswith("pydantic>=99 (pyproject.toml) is not met") for p in found), found


def test_a_new_dependency_missing_from_the_lock_is_named(copy: Path) -> None:
    models = copy / "constraints" / "models.in"
    models.write_text(models.read_text(encoding="utf-8") + "llm-tinyllama\n", encoding="utf-8")
    found = lock.problems(lock.Files(copy))
    assert (
        "llm-tinyllama (constraints/models.in) is not in constraints/models.lock: run `make lock`"
        in found
    )


def test_a_comment_in_the_inputs_does_not_stale_the_lock(copy: Path) -> None:
    constraints = copy / "constraints" / "dev.txt"
    constraints.write_text(
        "# a note for the reader\n" + constraints.read_text(encoding="utf-8"), encoding="utf-8"
    )
    assert lock.problems(lock.Files(copy)) == []


@pytest.mark.lockfile
def test_this_environment_is_exactly_the_lock() -> None:
    """`make test` installs constraints/dev.lock; nothing floats past it."""
    assert lock.problems(lock.Files(ROOT), installed=True) == []
