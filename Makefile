# The two commands of the README:
#   make example   set up, then run the main job (discover + plan) on a bundled example cluster
#   make test      set up, build (or reuse) the real test control plane, run every check and test
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: example test setup testbed checks pytest bench clean

$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $(STAMP)

setup: $(STAMP)

example: setup
	$(BIN)/cni-migrate --snapshot examples/calico-bgp-lossy discover
	$(BIN)/cni-migrate --snapshot examples/calico-bgp-lossy plan --to cilium --cilium-version 1.16.5 --strategy offline

testbed:
	bash testbed/build.sh

checks: setup
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/mypy
	$(BIN)/lint-imports

pytest: setup testbed
	$(BIN)/pytest

test: checks pytest

bench: setup testbed
	$(BIN)/python bench/run_all.py

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
