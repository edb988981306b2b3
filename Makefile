# Two commands on a fresh machine:  `make run`  and  `make test`.
# Both create .venv in the repo and install sparsepipe into it first.
#
# torch is pinned to a CPU-capable release so a machine without a GPU never pulls a CUDA build.
# On a GPU machine: make setup TORCH_SPEC='torch==2.13.0' PIP_TORCH_ARGS='--index-url https://download.pytorch.org/whl/cu128'

PYTHON ?= python3
VENV ?= .venv
TORCH_SPEC ?= torch==2.13.0
PIP_TORCH_ARGS ?=
PIP = $(VENV)/bin/python -m pip
STAMP = $(VENV)/.sparsepipe-installed

.PHONY: setup run test test-fast lint format bench clean-venv

setup: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --disable-pip-version-check $(PIP_TORCH_ARGS) "$(TORCH_SPEC)"
	$(PIP) install --quiet --disable-pip-version-check -e ".[test]"
	touch $(STAMP)

run: setup
	$(VENV)/bin/sparsepipe run full

test: setup
	$(VENV)/bin/python -m pytest

# The inner loop: everything but the end-to-end runs (under 3 minutes on 2 cores).
test-fast: setup
	$(VENV)/bin/python -m pytest -m "not slow"

# ruff is configured in pyproject.toml (line length 120); CI runs `make lint`.
lint: setup
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/ruff check .

format: setup
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

bench: setup
	$(VENV)/bin/sparsepipe bench all --json --out bench-results/bench.json

clean-venv:
	rm -rf $(VENV)
