# gatewatch: every set-up step lives here so a fresh Debian machine needs only `make demo` or `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
APT_PACKAGES := nginx postgresql iptables nftables iproute2 curl openssl procps
STAMP := $(VENV)/.installed

.PHONY: setup system-packages venv test test-unit test-lab lint demo probe-demo bench clean

setup: system-packages venv

# Installs the real servers the lab and tests use (root on Debian; skipped when all are present).
system-packages:
	@missing=""; \
	for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  SUDO=""; [ "$$(id -u)" -eq 0 ] || SUDO=sudo; \
	  $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -qq && \
	  $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	fi

venv: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q -U pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $(STAMP)

lint: venv
	$(BIN)/ruff check .

test: setup
	$(BIN)/ruff check .
	$(BIN)/pytest -q

test-unit: venv
	$(BIN)/pytest -q tests/unit

test-lab: setup
	$(BIN)/pytest -q tests/lab

probe-demo: venv
	$(BIN)/gatewatch probe --demo

# Probe engine: concurrency vs ideal and timing accuracy vs curl (figures in benchmarks/README.md).
bench: venv
	$(BIN)/python benchmarks/probe_bench.py

demo: setup
	$(BIN)/gatewatch lab demo

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
