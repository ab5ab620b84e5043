# One task runner for people, the README and CI. Every target creates or reuses .venv.
PY      ?= python3
VENV    := .venv
BIN     := $(VENV)/bin
# llama-cpp-python has no prebuilt wheel on PyPI: it builds from source (7-20 min on 2 cores),
# once; pip caches the wheel for later installs. The multimodal part is not needed.
export CMAKE_ARGS ?= -DLLAVA_BUILD=OFF
STAMP   := $(VENV)/.installed

.PHONY: setup graphviz postgres triage test lint typecheck bench clean

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

setup: $(STAMP)  ## Create .venv and install llmflow with its dev tools (idempotent).

triage: setup  ## Triage the sample inbox on the embedded model (exit 3: the malformed sample mail failed, as it should).
	$(BIN)/llmflow run email-triage src/llmflow/apps/email_triage/sample_inbox || [ $$? -eq 3 ]

# `llmflow graph` draws images with Graphviz's dot, a system package (Debian: graphviz).
graphviz:
	@command -v dot >/dev/null || { apt-get update -qq && apt-get install -y -qq graphviz >/dev/null; } \
	  || { echo "llmflow graph needs Graphviz: install it (apt-get install graphviz) and rerun"; exit 1; }

# The durable-run tests start a throwaway PostgreSQL 15 cluster (initdb in a temporary folder,
# on a free port) from the OS package's server binaries.
PG_BIN ?= /usr/lib/postgresql/15/bin
postgres:
	@test -x $(PG_BIN)/initdb || { apt-get update -qq && apt-get install -y -qq postgresql-15 >/dev/null; } \
	  || { echo "the durable-run tests need PostgreSQL 15: install it (apt-get install postgresql-15) and rerun"; exit 1; }

test: setup graphviz postgres lint typecheck  ## Lint, type-check and run every test (the embedded model included).
	$(BIN)/python -m pytest -q

lint: setup
	$(BIN)/ruff check src tests bench examples
	$(BIN)/ruff format --check src tests bench examples

typecheck: setup
	$(BIN)/mypy
	@for f in src/llmflow/templates/*/tools.py; do $(BIN)/mypy "$$f" || exit 1; done

bench: setup  ## Run the benchmarks and rewrite their committed results.
	$(BIN)/python bench/gateway_overhead.py
	$(BIN)/python bench/embedded_tokens.py
	$(BIN)/python bench/agent_overhead.py
	$(BIN)/python bench/fanout.py
	$(BIN)/python bench/cache_rerun.py
	$(BIN)/python bench/cascade_sms.py
	$(BIN)/python bench/cascade_eval.py
	$(BIN)/python bench/distill_sms.py
	$(BIN)/python bench/triage_thresholds.py
	$(BIN)/python bench/triage_quality.py
	$(BIN)/python bench/durable_overhead.py
	$(BIN)/python bench/durable_workers.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache llmflow-out
