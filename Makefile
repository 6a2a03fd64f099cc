# gatewatch: every set-up step lives here so a fresh Debian machine needs only `make demo` or `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
APT_PACKAGES := nginx postgresql mariadb-server iptables nftables iproute2 curl openssl procps
# the browser tests (tests/browser): Debian's chromium driven by Selenium through chromium-driver
APT_PACKAGES += chromium chromium-driver
STAMP := $(VENV)/.installed

.PHONY: setup system-packages venv test test-unit test-lab lint demo probe-demo bench clean
.PHONY: generate aws-tools infra-lint sam-build

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

# The README's test command: lint, the offline AWS checks (and sam build where python3.12 exists), every test.
test: setup aws-tools
	$(BIN)/ruff check .
	$(MAKE) --no-print-directory bandit
	$(MAKE) --no-print-directory infra-lint
	@if [ -n "$(PY312_BIN)" ]; then $(MAKE) --no-print-directory sam-build; \
	else echo "sam build skipped: no python3.12 interpreter on this machine"; fi
	$(BIN)/pytest -q

# bandit over the shipped code (library + handlers); each suppression is an inline `# nosec BXXX - reason`.
# (bandit warns about the words of every reason and about nosec on multi-line statements: those lines are dropped.)
BANDIT_PATHS := layers/gatewatch/gatewatch functions
.PHONY: bandit
bandit: venv
	@set -o pipefail; $(BIN)/bandit -q -r $(BANDIT_PATHS) 2>&1 \
	  | { grep -v -e "Test in comment" -e "nosec encountered" || true; }
	@echo "bandit: no unjustified findings in $(BANDIT_PATHS)"

test-unit: venv
	$(BIN)/pytest -q tests/unit

test-lab: setup
	$(BIN)/pytest -q tests/lab

probe-demo: venv
	$(BIN)/gatewatch probe --demo

# The wheel (library + CLI; no lab, no tests) in dist/: pip install dist/gatewatch-*.whl, or pipx install.
.PHONY: wheel
wheel: venv
	$(BIN)/python -m build --wheel --no-isolation

# Probe engine: concurrency vs ideal and timing accuracy vs curl (figures in benchmarks/README.md).
bench: venv
	$(BIN)/python benchmarks/probe_bench.py

# Issue 13's benchmarks (figures and machine in benchmarks/README.md; none of them runs in `make test`).
.PHONY: bench-cost bench-round bench-import bench-peers bench-latency bench-scale bench-shard
bench-cost: venv
	$(BIN)/python benchmarks/cost_model.py
bench-round: venv
	$(BIN)/python benchmarks/round_bench.py --write
bench-import: venv
	$(BIN)/python benchmarks/import_bench.py --no-bytecode
bench-peers: venv
	$(BIN)/python benchmarks/blackbox_compare.py
bench-latency: venv
	$(BIN)/python benchmarks/latency_cgroup.py
bench-scale: venv
	$(BIN)/python benchmarks/scale_bench.py
bench-shard: venv
	$(BIN)/python benchmarks/shard_bench.py

demo: setup
	$(BIN)/gatewatch lab demo --topology all

# The real fault lab (root): nginx, the FastAPI backend and PostgreSQL in the network namespace gwlab, the edge on
# 127.0.0.1:18080. `gatewatch lab faults` lists what `gatewatch lab inject NAME` can break; `lab heal` mends it.
.PHONY: lab-up lab-down record-facts
lab-up: setup
	$(BIN)/gatewatch lab up

lab-down: venv
	$(BIN)/gatewatch lab down

# Re-records tests/events/{onbox,facts}/<topology>/*.json from the real lab on every topology (commit the result).
record-facts: setup
	GATEWATCH_RECORD=1 $(BIN)/pytest -q tests/lab/test_faults.py

# -- AWS: generated artefacts, offline template checks, sam build --------------------------------------------------
# Each tool lives in its own environment so its pins never meet the project's: aws-sam-cli (with cfn-lint) in
# .venv-tools, checkov in .venv-checkov, asl-validator under .tools (npm). Measured fresh: about 45 s, 40 s and 5 s.
TOOLS_VENV := .venv-tools
CHECKOV_VENV := .venv-checkov
NPM_TOOLS := .tools
ASL := infra/statemachine/diagnose.asl.json
export SAM_CLI_TELEMETRY := 0
# sam build needs python3.12 (the Lambda runtime) on PATH; Debian 12 has none, pyenv here does.
PY312_BIN ?= $(lastword $(wildcard $(HOME)/.pyenv/versions/3.12*/bin))

# Everything generated from one source of truth: the state machine and the README picture from the decision
# tree, the SSM documents from the on-box script and the remediation catalogue. Tests fail when these are stale.
generate: venv
	$(BIN)/python -m gatewatch.tree.export --write .
	$(BIN)/python -m gatewatch.aws.ssm_documents --write
	$(BIN)/gatewatch config schema > docs/targets.schema.json

$(TOOLS_VENV)/.installed:
	$(PYTHON) -m venv $(TOOLS_VENV)
	$(TOOLS_VENV)/bin/pip install -q -U pip
	$(TOOLS_VENV)/bin/pip install -q aws-sam-cli cfn-lint
	touch $@

$(CHECKOV_VENV)/.installed:
	$(PYTHON) -m venv $(CHECKOV_VENV)
	$(CHECKOV_VENV)/bin/pip install -q -U pip
	$(CHECKOV_VENV)/bin/pip install -q checkov
	touch $@

$(NPM_TOOLS)/node_modules/.bin/asl-validator:
	npm install --prefix $(NPM_TOOLS) --no-audit --no-fund --loglevel=error asl-validator@4

aws-tools: $(TOOLS_VENV)/.installed $(CHECKOV_VENV)/.installed $(NPM_TOOLS)/node_modules/.bin/asl-validator

infra-lint: venv aws-tools
	$(BIN)/python -m gatewatch.aws.ssm_documents --check
	$(TOOLS_VENV)/bin/cfn-lint infra/template.yaml
	$(TOOLS_VENV)/bin/sam validate --lint -t infra/template.yaml
	$(CHECKOV_VENV)/bin/checkov -f infra/template.yaml --framework cloudformation --skip-download --quiet --compact
	@if [ -f $(ASL) ]; then \
	  echo "asl-validator $(ASL)"; $(NPM_TOOLS)/node_modules/.bin/asl-validator --json-path $(ASL); \
	else echo "infra-lint: $(ASL) does not exist yet: ASL validation skipped"; fi

sam-build: aws-tools
	@test -n "$(PY312_BIN)" || { echo "sam-build: python3.12 not found (set PY312_BIN=/path/to/bin)"; exit 2; }
	PATH="$(PY312_BIN):$$PATH" $(TOOLS_VENV)/bin/sam build --parallel --cached
	$(BIN)/python -m tests.artefact check-build .aws-sam/build

# The layer's lock: layers/lock/requirements.in resolved by python3.12 into exact pins (layers/gatewatch/requirements.txt).
.PHONY: lock
lock:
	@test -n "$(PY312_BIN)" || { echo "lock: python3.12 not found (set PY312_BIN=/path/to/bin)"; exit 2; }
	$(PY312_BIN)/python3.12 layers/lock/lock.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
