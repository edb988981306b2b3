# Two commands on a fresh machine:  `make run`  and  `make test`.
# Both create .venv in the repo and install sparsepipe into it first.
#
# Which torch build `make setup` installs (README, "Quick start"):
#  - PIP_TORCH_ARGS given: exactly `pip install $(PIP_TORCH_ARGS) $(TORCH_SPEC)`, e.g. on a GPU machine
#    make setup PIP_TORCH_ARGS='--index-url https://download.pytorch.org/whl/cu128'
#  - otherwise, on Linux with no NVIDIA GPU (`nvidia-smi -L` fails or is absent) and TORCH_CPU_INDEX reachable
#    within 5 s: the CPU build from TORCH_CPU_INDEX (no CUDA wheels); if that install fails, the plain install;
#  - otherwise the plain `pip install $(TORCH_SPEC)`, from whatever pip is configured to use (PyPI, a mirror,
#    local wheels). On Linux with a GPU that is PyPI's CUDA build; on macOS and Windows a CPU build.
# `make -s torch-args` prints the choice without installing anything.

PYTHON ?= python3
VENV ?= .venv
TORCH_SPEC ?= torch==2.13.0
PIP_TORCH_ARGS ?=
TORCH_CPU_INDEX ?= https://download.pytorch.org/whl/cpu
PIP = $(VENV)/bin/python -m pip
STAMP = $(VENV)/.sparsepipe-installed

.PHONY: setup run test test-fast lint format bench clean-venv torch-args

setup: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	@args="$$($(MAKE) -s --no-print-directory torch-args)"; \
	echo "setup: pip install $$args $(TORCH_SPEC)"; \
	$(PIP) install --quiet --disable-pip-version-check $$args "$(TORCH_SPEC)" || { \
	  [ -z "$(PIP_TORCH_ARGS)" ] && [ -n "$$args" ] && \
	  echo "setup: the CPU index failed; plain pip install $(TORCH_SPEC)" && \
	  $(PIP) install --quiet --disable-pip-version-check "$(TORCH_SPEC)"; }
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

torch-args:
	@if [ -n "$(PIP_TORCH_ARGS)" ]; then echo "$(PIP_TORCH_ARGS)"; \
	elif [ "$$(uname -s)" = Linux ] && ! nvidia-smi -L >/dev/null 2>&1 && \
	     $(PYTHON) -c "import sys, urllib.request; urllib.request.urlopen(sys.argv[1].rstrip('/') + '/torch/', timeout=5)" "$(TORCH_CPU_INDEX)" >/dev/null 2>&1; then \
	  echo "--index-url $(TORCH_CPU_INDEX)"; \
	else echo ""; fi
