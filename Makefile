# The README's commands are `make demo`, `make test` and `make test-quick`; CI runs `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
# The CPU build of torch must come first: a looser pin pulls a multi-GB CUDA build.
TORCH  := torch==2.13.0
# Stamps remember an install, so later runs reuse the environment; editing
# pyproject.toml installs again.
INSTALLED      := $(VENV)/.installed
INSTALLED_TEST := $(VENV)/.installed-test
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export ANONYMIZED_TELEMETRY := False
export TOKENIZERS_PARALLELISM := false

.PHONY: demo test test-quick bench lint install install-test clean

$(BIN)/python:
	@echo "== creating $(VENV) and installing the CPU build of torch (once; pip shows its progress)"
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --upgrade pip
	$(BIN)/pip install $(TORCH)

$(INSTALLED): pyproject.toml | $(BIN)/python
	@echo "== installing engramdb and its dependencies into $(VENV) (once)"
	$(BIN)/pip install -e .
	@touch $@

$(INSTALLED_TEST): pyproject.toml $(INSTALLED)
	@echo "== installing the test, benchmark, server, Ray and fast extras into $(VENV) (once)"
	$(BIN)/pip install -e '.[test,bench,server,mcp,ray,fast]'
	@touch $@

install: $(INSTALLED)

install-test: $(INSTALLED_TEST)

demo: $(INSTALLED)
	$(BIN)/python -m engramdb.demo

# The test command also runs the linters and mypy: CI runs exactly this.
test: $(INSTALLED_TEST) lint
	$(BIN)/python -m pytest -q -p no:cacheprovider --durations=10

# What a contributor runs often: everything not marked slow or model (under 2 minutes).
test-quick: $(INSTALLED_TEST) lint
	$(BIN)/python -m pytest -q -p no:cacheprovider -m "not slow and not model"

bench: $(INSTALLED_TEST)
	$(BIN)/python benchmarks/run_all.py

lint: $(INSTALLED_TEST)
	$(BIN)/ruff check engramdb tests benchmarks conftest.py
	$(BIN)/ruff format --check engramdb tests benchmarks conftest.py
	$(BIN)/mypy engramdb

clean:
	rm -rf $(VENV) build dist *.egg-info benchmarks/results
