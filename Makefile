# The two commands of the README:
#   make example   set up, then run the main job (discover + plan) on a bundled example cluster
#   make test      set up, build (or reuse) the real test control plane, run every check and test
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: example test setup node-tools testbed checks pytest bench clean

$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $(STAMP)

# The Debian tools the node agent drives and its netns tests need; apt-get only runs when one is missing.
NODE_TOOLS := iptables-save:iptables ipset:ipset nft:nftables ip:iproute2 ping:iputils-ping lsmod:kmod sysctl:procps
node-tools:
	@missing=""; for t in $(NODE_TOOLS); do command -v $${t%%:*} >/dev/null 2>&1 || missing="$$missing $${t#*:}"; done; \
	if [ -n "$$missing" ]; then \
	  echo "node-tools: installing$$missing"; \
	  DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 update -qq && \
	  DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends $$missing; \
	fi

setup: $(STAMP) node-tools

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
