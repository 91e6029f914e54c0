# StreamFlow: `make help` lists the targets.
SHELL := /usr/bin/env bash -o pipefail
.SHELLFLAGS := -ec
.DEFAULT_GOAL := help

UV_VERSION  := 0.13.9
TOOLS_DIR   := $(HOME)/.cache/streamflow/uv-$(UV_VERSION)
UV          := $(TOOLS_DIR)/bin/uv
VENV        := .venv
PY          := $(VENV)/bin/python
# Telemetry off: Feast and Evidently phone home by default.
export FEAST_USAGE := False
export DO_NOT_TRACK := 1

DATA_DIR    := $(or $(STREAMFLOW_DATA_DIR),data)
BOOTSTRAPPED := $(DATA_DIR)/.bootstrapped
REF ?=
CUR ?=
PYTEST_ARGS ?=

##@ Start here
help: ## Show this help
	@awk 'BEGIN {FS = ":.*##"} /^[a-zA-Z_-]+:.*?##/ { printf "  \033[36m%-12s\033[0m %s\n", $$1, $$2 } /^##@/ { printf "\n\033[1m%s\033[0m\n", substr($$0, 5) }' $(MAKEFILE_LIST)

demo: venv ## Whole flow on the embedded default: data, Feast, model, 2 drift runs, API + metrics
	$(PY) -m jobs.bootstrap && touch $(BOOTSTRAPPED)
	$(PY) -m jobs.drift --reference 2024-01-31 --current 2024-02-29
	$(PY) -m jobs.drift --reference 2024-02-29 --current 2024-03-31
	$(PY) -m jobs.demo

test: venv ## Run the test suite (starts its own PostgreSQL and uvicorn servers)
	$(PY) -m pytest $(PYTEST_ARGS)

##@ Pieces
serve: venv $(BOOTSTRAPPED) ## Run the API in the foreground on 127.0.0.1:8000
	STREAMFLOW_API_HOST=127.0.0.1 STREAMFLOW_API_PORT=8000 $(PY) -m api

bootstrap: venv ## Demo data + feast apply + materialize + train (idempotent; FORCE=1 redoes all)
	$(PY) -m jobs.bootstrap $(if $(FORCE),--force) && touch $(BOOTSTRAPPED)

drift: venv $(BOOTSTRAPPED) ## Run the drift job (REF=YYYY-MM-DD CUR=YYYY-MM-DD; default: two latest)
	$(PY) -m jobs.drift $(if $(REF),--reference $(REF)) $(if $(CUR),--current $(CUR))

train: venv ## Retrain the model on the oldest snapshot
	$(PY) -m jobs.train

status: ## Show the drift status ConfigMap (embedded default: the local file sink)
	@cat $(DATA_DIR)/status/streamflow-drift-status.json 2>/dev/null || echo "no drift status yet: run make drift"

##@ Development
venv: $(VENV)/.synced ## Create .venv from the hashed lock (uv pip sync)

lock: $(UV) ## Re-resolve pinned dependencies into the hashed lock files
	$(UV) pip compile pyproject.toml --python-version 3.11 --generate-hashes -q -o requirements.lock
	$(UV) pip compile pyproject.toml --extra dev --python-version 3.11 --generate-hashes -q -o requirements-dev.lock

clean: ## Remove generated data and reports (keeps .venv)
	rm -rf $(DATA_DIR) reports/drift

$(UV):
	python3 -m venv $(TOOLS_DIR)
	$(TOOLS_DIR)/bin/pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)

$(VENV)/.synced: requirements-dev.lock | $(UV)
	$(UV) venv --quiet --allow-existing --python 3.11 $(VENV)
	$(UV) pip sync --quiet --python $(PY) requirements-dev.lock
	touch $@

$(BOOTSTRAPPED):
	$(PY) -m jobs.bootstrap
	touch $@

.PHONY: help demo test serve bootstrap drift train status venv lock clean
