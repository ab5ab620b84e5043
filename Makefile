# One task runner for people, the README and CI. Every target creates or reuses .venv.
PY      ?= python3
VENV    := .venv
BIN     := $(VENV)/bin
# llama-cpp-python has no prebuilt wheel on PyPI: it builds from source (7-20 min on 2 cores),
# once per machine. The build is portable, never -march=native: the machine that builds is not
# always the one that runs (CI, a container moved to another host), and a native build on a CPU
# with AMX/AVX-512 FP16 segfaulted elsewhere. x86-64-v3 (AVX2, FMA, F16C, BMI2: every x86
# server and laptop since ~2015) is the default; `make setup LLAMA_LEVEL=x86-64-v2` builds
# for older CPUs (SSE4.2 only, slower). The wheel is kept in a folder named by version, level
# and Python, because pip's own wheel cache ignores build flags and would hand back a
# wheel built with other ones. Delete that folder to force a rebuild.
LLAMA_VERSION ?= 0.3.36
ARCH          := $(shell uname -m)
ifeq ($(ARCH),x86_64)
LLAMA_LEVEL   ?= x86-64-v3
else
LLAMA_LEVEL   ?= $(ARCH)-generic
endif
LLAMA_FLAGS_x86-64-v3 := -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_BMI2=ON \
                         -DGGML_AVX512=OFF -DGGML_AVX_VNNI=OFF -DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF
LLAMA_FLAGS_x86-64-v2 := -DGGML_AVX=OFF -DGGML_AVX2=OFF -DGGML_FMA=OFF -DGGML_F16C=OFF -DGGML_BMI2=OFF \
                         -DGGML_AVX512=OFF -DGGML_AVX_VNNI=OFF -DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF
LLAMA_CMAKE_ARGS := -DLLAVA_BUILD=OFF -DGGML_NATIVE=OFF $(LLAMA_FLAGS_$(LLAMA_LEVEL))
PYTAG   := $(shell $(PY) -c 'import sys; print(f"cp{sys.version_info[0]}{sys.version_info[1]}")')
WHEELS  ?= $(HOME)/.cache/llmflow/wheels/llama-cpp-python-$(LLAMA_VERSION)-$(LLAMA_LEVEL)-$(PYTAG)
STAMP   := $(VENV)/.installed

.PHONY: setup graphviz postgres imap chromium triage test test-extras lint typecheck bench clean

$(WHEELS)/.built:
	@test -x $(BIN)/python || $(PY) -m venv $(VENV)
	@echo "building llama-cpp-python $(LLAMA_VERSION) for $(LLAMA_LEVEL) (7-20 min, once per machine)"
	rm -rf $(WHEELS).partial && mkdir -p $(WHEELS).partial
	CMAKE_ARGS="$(LLAMA_CMAKE_ARGS)" $(BIN)/python -m pip wheel --quiet --no-cache-dir --no-deps \
	  --no-binary llama-cpp-python "llama-cpp-python==$(LLAMA_VERSION)" -w $(WHEELS).partial
	rm -rf $(WHEELS) && mv $(WHEELS).partial $(WHEELS) && touch $@

$(STAMP): pyproject.toml $(WHEELS)/.built
	@test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet --no-deps --force-reinstall $(WHEELS)/llama_cpp_python-*.whl
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

# Ends by decoding a few tokens on the embedded model in a child process: a build that cannot
# run on this CPU is reported here, with the fix, not as a segfault in the middle of a run.
setup: $(STAMP)  ## Create .venv and install llmflow with its dev tools (idempotent).
	@$(BIN)/python -m llmflow.doctor --embedded

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

# The mailbox tests start a real Dovecot IMAP server (in a temporary folder, on a free port).
imap:
	@command -v dovecot >/dev/null && command -v openssl >/dev/null || { apt-get update -qq && apt-get install -y -qq dovecot-imapd openssl >/dev/null; } \
	  || { echo "the mailbox tests need Dovecot: install it (apt-get install dovecot-imapd openssl) and rerun"; exit 1; }

# The viewer's browser tests (tests/test_ui_browser.py) drive Debian's Chromium.
chromium:
	@{ command -v chromium && command -v chromedriver; } >/dev/null || { apt-get update -qq && apt-get install -y -qq chromium chromium-driver >/dev/null; } \
	  || { echo "the browser tests need Chromium: install it (apt-get install chromium chromium-driver) and rerun"; exit 1; }

test: setup graphviz postgres imap chromium lint typecheck  ## Lint, type-check and run every test (the embedded model included).
	$(BIN)/python -m pytest -q

# The opt-in local model's tests (marked slow): Qwen2.5-Coder-1.5B is 1.1 GB from PyPI and
# triages at ~15 s a call here, too slow for every `make test`.
test-extras: setup  ## Install the opt-in Qwen model and run its slow tests (three mails through the triage).
	$(BIN)/python -m pip install --quiet -e '.[qwen]'
	$(BIN)/python -m pytest -q -m slow

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
	$(BIN)/python bench/default_path.py
	$(BIN)/python bench/startup.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache llmflow-out
