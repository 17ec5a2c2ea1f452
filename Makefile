# The README's two commands: `make run` and `make test`. Both work on a fresh machine.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
PIP    := $(BIN)/python -m pip
STAMP  := $(VENV)/.installed-dev
EXAMPLE ?= examples/01-cpu-smollm2.yaml

.PHONY: run test lint typecheck layers unit bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip

# One venv with the dev tools; torch (when an extra needs it) is pinned to the CPU build.
$(STAMP): pyproject.toml constraints/dev.txt | $(BIN)/python
	$(PIP) install --quiet -c constraints/dev.txt -e '.[dev]'
	touch $@

run: $(STAMP)
	$(BIN)/bosun plan $(EXAMPLE)
	$(BIN)/bosun render $(EXAMPLE)

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks

typecheck: $(STAMP)
	$(BIN)/mypy

layers: $(STAMP)
	$(BIN)/lint-imports

unit: $(STAMP)
	$(BIN)/pytest

test: lint typecheck layers unit

bench: $(STAMP)
	$(BIN)/python benchmarks/cli_startup.py
	$(BIN)/python benchmarks/allocator_bench.py --json benchmarks/results/allocator.json

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
