# tickpipe workflow. `make help` lists the targets.
SHELL := /bin/bash
.DEFAULT_GOAL := help

UV_VERSION := 0.13.9
TOOLS := .tools
UV := $(TOOLS)/bin/uv
PY := .venv/bin/python
ENGINE := bash deploy/docker/engine.sh
IMAGES := bash deploy/docker/images.sh
export UV_PYTHON := 3.11

.PHONY: help install run demo-kafka browser-install deploy-tools infra-up infra-down infra-status infra-install topics \
        docker-engine docker-engine-stop wheelhouse base-images images \
        lint format typecheck schemas test test-unit test-integration bench bench-embedded clean

help: ## list the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-18s %s\n", $$1, $$2}'

$(UV):
	python3 -m venv $(TOOLS)
	$(TOOLS)/bin/pip install -q "uv==$(UV_VERSION)"

.venv/.synced: $(UV) uv.lock pyproject.toml libs/*/pyproject.toml services/*/pyproject.toml
	$(UV) sync --frozen --all-packages
	@touch $@

install: .venv/.synced ## create .venv with the locked dependencies

run: install ## the embedded demo: five services, in-memory bus, real sample data
	$(PY) -m tickpipe.cli demo

demo-kafka: install ## the same pipeline as five processes over the local Kafka and Redis
	$(PY) -m tickpipe.cli demo --kafka

infra-install: install ## fetch the Kafka jars (Maven) and redis-server (apt) if missing
	$(PY) -m tickpipe.cli infra install

browser-install: ## Debian's chromium for the dashboard's browser test (apt, as root)
	@command -v chromium >/dev/null || { \
	  [ "$$(id -u)" = 0 ] || { echo "chromium missing: apt-get install -y chromium (as root)"; exit 1; }; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; }

deploy-tools: install ## kustomize, promtool, checkov, kubernetes-validate, check-jsonschema into .tools/
	bash deploy/tools/install.sh

docker-engine: ## Debian's Docker engine and compose (apt, as root); starts dockerd if none answers
	$(ENGINE) start

docker-engine-stop: ## stop the dockerd docker-engine started (never one it found running)
	$(ENGINE) stop

wheelhouse: install ## .tickpipe/wheelhouse: the image's Python packages, from uv.lock (PyPI, on the host)
	$(IMAGES) wheelhouse

base-images: install ## Kafka, Redis, Prometheus, Python: pulled, or built from Debian/Maven without a registry
	$(IMAGES) bases

images: install ## base-images, the wheelhouse and the tickpipe image (tickpipe:local); no network in docker build
	$(IMAGES) all

infra-up: install ## start Kafka (KRaft) and Redis on loopback
	$(PY) -m tickpipe.cli infra up

infra-down: install ## stop them
	$(PY) -m tickpipe.cli infra down

infra-status: install
	$(PY) -m tickpipe.cli infra status

topics: install ## create the topics on $$TICKPIPE_KAFKA_BOOTSTRAP
	$(PY) -m tickpipe.cli topics create

format: install
	.venv/bin/ruff format .
	.venv/bin/ruff check --fix .

lint: install ## ruff (lint + format check)
	.venv/bin/ruff check .
	.venv/bin/ruff format --check .

typecheck: install ## mypy (strict for libs/)
	.venv/bin/mypy libs/tickpipe/src libs/quant/src services/*/src

schemas: install ## regenerate schemas/ from the event models
	$(PY) -m tickpipe.cli schemas generate

test-unit: install
	$(PY) -m pytest tests/unit -q

test-integration: install infra-install
	$(PY) -m pytest tests/integration -q

# The engine runs for the tests (and is stopped after them if this run started it): the broker
# fixtures use testcontainers with the base images, and tests/deploy runs the compose stack.
test: install infra-install browser-install deploy-tools lint typecheck ## everything CI runs: lint, types, all tests
	$(ENGINE) run -- bash -c '$(IMAGES) bases && $(IMAGES) wheelhouse && $(PY) -m pytest -q'

bench: install infra-install ## pipeline benchmark over Kafka and in memory (prints a table)
	$(PY) bench/pipeline.py

clean: ## remove the venv, tools and local state
	rm -rf .venv $(TOOLS) .tickpipe
