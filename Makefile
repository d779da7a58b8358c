# matih-ingest: `make run` starts the local stack and a demo run; `make test` runs the suite.
# Both set up everything first (virtualenv, packages, Kafka jars); each step is idempotent.

SHELL := bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
INSTALLED := $(VENV)/.installed
PYTEST_ARGS ?=
BENCH_ARGS ?=

.DEFAULT_GOAL := help

.PHONY: help
help: ## Show the targets
	@grep -hE '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*?## "}; {printf "  %-14s %s\n", $$1, $$2}'

# Every package at the version the suite last passed with: the runtime set the image
# ships (deploy/docker/constraints.txt) and the dev tools (tests/constraints.txt). A new
# release of a dependency reaches the project through `make lock`, never by surprise.
CONSTRAINTS := deploy/docker/constraints.txt tests/constraints.txt

# PYTHONWARNINGS=ignore: setuptools warns on every editable install of a flat layout
# like ours; it says nothing about this project, so a newcomer's set-up does not show it.
$(INSTALLED): pyproject.toml $(CONSTRAINTS)
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	PYTHONWARNINGS=ignore $(BIN)/pip install -q $(addprefix --constraint ,$(CONSTRAINTS)) -e ".[dev]"
	touch $@

.PHONY: install
install: $(INSTALLED) ## Create the virtualenv and install the package with its dev tools

.PHONY: kafka-fetch
kafka-fetch: ## Resolve the Apache Kafka jars from Maven Central (cached in .cache/kafka)
	deploy/kafka/kafka.sh fetch

# The validators kubernetes-models generates from KEDA's and the Prometheus Operator's
# CRDs, for the deploy tests (Kubernetes' own schemas do not cover operators' kinds).
CRD_MODELS := .cache/crds
.PHONY: crd-models
crd-models: ## Fetch the CRD validators of KEDA and Prometheus Operator (npm; skipped without it)
	@if ! command -v npm >/dev/null; then \
		echo "no npm here: the deploy tests check ScaledObject and ServiceMonitor field by field only"; \
	elif ! test -d $(CRD_MODELS)/node_modules/@kubernetes-models/keda; then \
		npm install --silent --no-audit --no-fund --prefix $(CRD_MODELS) \
			@kubernetes-models/keda@0.4.2 @kubernetes-models/prometheus-operator@6.0.0; \
	fi

.PHONY: kafka-start
kafka-start: kafka-fetch ## Start the local Kafka broker (KRaft, 127.0.0.1:9092)
	deploy/kafka/kafka.sh start

.PHONY: kafka-stop
kafka-stop: ## Stop the local Kafka broker
	deploy/kafka/kafka.sh stop

.PHONY: kafka-secure-start
kafka-secure-start: kafka-fetch ## Start the local broker in secure mode (SASL_SSL, SCRAM, ACLs; 127.0.0.1:9092)
	KAFKA_SECURE=1 deploy/kafka/kafka.sh start
	@echo "admin settings: deploy/kafka/kafka.sh admin-env (with KAFKA_SECURE=1)"

.PHONY: kafka-secure-stop
kafka-secure-stop: ## Stop the local broker in secure mode
	KAFKA_SECURE=1 deploy/kafka/kafka.sh stop

.PHONY: kafka-cluster-start
kafka-cluster-start: kafka-fetch ## Start a local 3-node Kafka cluster (RF 3, min ISR 2; 127.0.0.1:9192,9194,9196)
	deploy/kafka/kafka.sh cluster-start

.PHONY: kafka-cluster-stop
kafka-cluster-stop: ## Stop the local 3-node Kafka cluster
	deploy/kafka/kafka.sh cluster-stop

.PHONY: run
run: install kafka-fetch ## Start broker, worker and MLflow UI, then run the demo (Ctrl-C stops all)
	$(BIN)/matih-ingest up --demo

.PHONY: test
test: lint kafka-fetch crd-models ## Lint, then run the whole suite (starts its own broker on a test port)
	$(BIN)/pytest $(PYTEST_ARGS)

.PHONY: test-secure
test-secure: install kafka-fetch ## Run the integration suite against a broker in secure mode
	MATIH_TEST_KAFKA_SECURE=1 $(BIN)/pytest tests/integration $(PYTEST_ARGS)

.PHONY: test-unit
test-unit: install crd-models ## Run the unit tests only (no broker)
	$(BIN)/pytest tests/unit $(PYTEST_ARGS)

.PHONY: bench
bench: install kafka-fetch ## Benchmark against MLflow, then the SDK under overload (about 25 min; BENCH_ARGS=--quick: 5 min)
	$(BIN)/python -m tests.bench.pipeline $(BENCH_ARGS)
	$(BIN)/python -m tests.bench.overload $(if $(filter --quick,$(BENCH_ARGS)),--quick) $(OVERLOAD_ARGS)

.PHONY: lint
lint: install ## ruff, mypy, and the import layers (import-linter)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports

# Two fresh virtualenvs resolve today's releases within pyproject's ranges: one with the
# runtime dependencies only (the image's set), then one adding the dev extra to that set.
LOCK := .cache/lock
NORMALISE := sed -e 's/.*/\L&/' -e 's/_/-/g' | sort  # names as PyPI normalises them
.PHONY: lock
lock: ## Re-resolve the pinned dependency sets from PyPI (then `make test` before committing them)
	rm -rf $(LOCK)
	$(PYTHON) -m venv $(LOCK)/runtime && $(LOCK)/runtime/bin/pip install -q .
	$(LOCK)/runtime/bin/pip freeze --exclude matih-ingest | $(NORMALISE) > $(LOCK)/runtime.txt
	$(PYTHON) -m venv $(LOCK)/dev && $(LOCK)/dev/bin/pip install -q --constraint $(LOCK)/runtime.txt ".[dev]"
	$(LOCK)/dev/bin/pip freeze --exclude matih-ingest | $(NORMALISE) | grep -vxFf $(LOCK)/runtime.txt > $(LOCK)/dev.txt
	{ echo "# Exact versions of every runtime dependency the image installs and \`make install\` pins:"; \
	  echo "# the set the test suite last passed with (regenerated by \`make lock\`)."; \
	  cat $(LOCK)/runtime.txt; } > deploy/docker/constraints.txt
	{ echo "# Exact versions of the dev tools \`make install\` adds to the runtime set (deploy/docker/"; \
	  echo "# constraints.txt): the set the test suite last passed with (regenerated by \`make lock\`)."; \
	  cat $(LOCK)/dev.txt; } > tests/constraints.txt
	rm -rf $(LOCK)

.PHONY: clean
clean: ## Remove local data (MLflow store, broker logs); keeps the venv and jar cache
	deploy/kafka/kafka.sh stop || true
	rm -rf .data
