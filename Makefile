# The README's two commands are `make demo` and `make test`; CI runs `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
# The CPU build of torch must come first: a looser pin pulls a multi-GB CUDA build.
TORCH  := torch==2.13.0
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export ANONYMIZED_TELEMETRY := False
export TOKENIZERS_PARALLELISM := false

.PHONY: demo test bench lint install install-test clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet $(TORCH)

install: $(BIN)/python
	$(BIN)/pip install --quiet -e .

install-test: $(BIN)/python
	$(BIN)/pip install --quiet -e '.[test,bench,server,mcp]'

demo: install
	$(BIN)/python -m engramdb.demo

# The test command also runs the linters and mypy: CI runs exactly this.
test: install-test lint
	$(BIN)/python -m pytest -q -p no:cacheprovider

bench: install-test
	$(BIN)/python benchmarks/run_all.py

lint: install-test
	$(BIN)/ruff check engramdb tests benchmarks conftest.py
	$(BIN)/ruff format --check engramdb tests benchmarks conftest.py
	$(BIN)/mypy engramdb

clean:
	rm -rf $(VENV) build dist *.egg-info benchmarks/results
