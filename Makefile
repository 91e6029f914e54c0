# StreamFlow: `make help` lists the targets.
SHELL := /usr/bin/env bash -o pipefail
.SHELLFLAGS := -ec
.DEFAULT_GOAL := help

UV_VERSION  := 0.13.9
TOOLS_DIR   := $(HOME)/.cache/streamflow/uv-$(UV_VERSION)
UV          := $(TOOLS_DIR)/bin/uv
VENV        := .venv
PY          := $(VENV)/bin/python
CLIENTS_VENV := .build/venv-clients
# The chart tests build their own tools with it (tests/support/tools.py)
export UV_BIN := $(UV)

DATA_DIR    := $(or $(STREAMFLOW_DATA_DIR),data)
BOOTSTRAPPED := $(DATA_DIR)/.bootstrapped
REF ?=
MODE ?=
CUR ?=
PYTEST_ARGS ?=
BENCH_ARGS ?=
SOAK_SECONDS ?= 300
SOAK_CONCURRENCY ?= 4

##@ Start here
help: ## Show this help
	@awk 'BEGIN {FS = ":.*##"} /^[a-zA-Z_-]+:.*?##/ { printf "  \033[36m%-12s\033[0m %s\n", $$1, $$2 } /^##@/ { printf "\n\033[1m%s\033[0m\n", substr($$0, 5) }' $(MAKEFILE_LIST)

demo: venv ## Whole flow on the embedded default: data, Feast, model, 2 drift runs, guarded retrain, performance, API + metrics
	$(PY) -m jobs.bootstrap && touch $(BOOTSTRAPPED)
	$(PY) -m jobs.drift --reference 2024-01-31 --current 2024-02-29
	$(PY) -m jobs.drift --reference 2024-02-29 --current 2024-03-31
	$(PY) -m jobs.retrain
	$(PY) -m jobs.performance
	$(PY) -m tools.demo

test: venv lint ## Run the test suite: lint, then every tier (starts its own PostgreSQL, uvicorn, Prometheus, kube-apiserver)
	$(PY) -m pytest $(PYTEST_ARGS)

##@ Pieces
serve: venv $(BOOTSTRAPPED) ## Run the API in the foreground on 127.0.0.1:8000
	STREAMFLOW_API_HOST=127.0.0.1 STREAMFLOW_API_PORT=8000 $(PY) -m api

soak: venv $(BOOTSTRAPPED) ## Soak the real API: SOAK_SECONDS (300) of bounded /predict load (SOAK_CONCURRENCY 4); errors, RSS, fds, metrics -> reports/soak.json
	$(PY) -m tools.soak --seconds $(SOAK_SECONDS) --concurrency $(SOAK_CONCURRENCY) --report reports/soak.json

bootstrap: venv ## Demo data + feast apply + materialize + train (idempotent; FORCE=1 redoes all)
	$(PY) -m jobs.bootstrap $(if $(FORCE),--force) && touch $(BOOTSTRAPPED)

drift: venv $(BOOTSTRAPPED) ## Run the drift job (REF=YYYY-MM-DD CUR=YYYY-MM-DD; default: two latest; pushes to STREAMFLOW_PUSHGATEWAY_URL if set)
	$(PY) -m jobs.drift $(if $(REF),--reference $(REF)) $(if $(CUR),--current $(CUR))

retrain: venv $(BOOTSTRAPPED) ## Guarded retrain (MODE=dry-run|promote; default dry-run): acts only after repeated drift, promotes only a better challenger
	$(PY) -m jobs.retrain $(if $(MODE),--mode $(MODE))

performance: venv $(BOOTSTRAPPED) ## The served model's AUC, precision, recall, log loss and calibration on each labelled month
	$(PY) -m jobs.performance

train: venv ## Retrain the model on the oldest snapshot
	$(PY) -m jobs.train

observe: venv $(BOOTSTRAPPED) ## Real Prometheus + Pushgateway + API + drift job here; prints each dashboard panel's value (UI on 127.0.0.1:9090)
	$(PY) -m tools.monitoring.observe

bench: venv $(BOOTSTRAPPED) ## Benchmarks (~10 min; not part of make test): metrics cost, /predict vs bare FastAPI, drift at 100k/1M users -> reports/bench.json
	$(PY) -m tools.bench $(BENCH_ARGS)

dashboards: venv ## Regenerate charts/streamflow/dashboards/*.json from tools/monitoring/dashboards.py
	$(PY) -m tools.monitoring.dashboards

chart-docs: venv ## Regenerate charts/streamflow/README.md from values.yaml's `# --` comments (helm-docs)
	$(PY) -m tools.chart_docs

status-local: venv ## The embedded default's drift status (the local ConfigMap file) and the last runs of the history
	@cat $(DATA_DIR)/status/streamflow-drift-status.json 2>/dev/null || echo "no drift status yet: run make drift"
	@echo; $(PY) -m jobs.history --limit 10

##@ Kubernetes: kind or minikube (needs docker, kubectl, helm, and kind or minikube), or CLUSTER=local (docs/cluster.md)
# KPS_VERSION, KIND_NODE_IMAGE, MINIKUBE_KUBERNETES_VERSION, ... (one place for every version)
include k8s/versions.env
CLUSTER       ?= kind
CLUSTER_NAME  ?= streamflow
NAMESPACE     ?= streamflow
RELEASE       ?= streamflow
KPS_RELEASE   ?= kps
KPS_NAMESPACE ?= monitoring
KPS_REPO      := https://prometheus-community.github.io/helm-charts
KPS_CHART_DIR := .build/kube-prometheus-stack-$(KPS_VERSION)
# Images are tagged by content: g<commit>, plus -dirty-<hash> of the build context's uncommitted
# changes (tools/image_tag.py, stdlib only), so a cluster never runs a stale image under a reused tag
IMAGE_TAG     ?= $(shell python3 -m tools.image_tag)
IMAGES         = streamflow-api:$(IMAGE_TAG) streamflow-jobs:$(IMAGE_TAG)
# the chart's resource prefix: the release name, or <release>-streamflow (charts/streamflow/templates/_helpers.tpl)
FULLNAME      := $(if $(findstring streamflow,$(RELEASE)),$(RELEASE),$(RELEASE)-streamflow)
N             ?= 500
# Alerts link their runbooks: docs/runbooks.md where this repository's origin is hosted (override RUNBOOK_URL=)
REPO_WEB_URL  := $(shell git remote get-url origin 2>/dev/null | sed -E 's#^git@([^:]+):#https://\1/#; s#\.git$$##' | grep '^https://')
RUNBOOK_URL   ?= $(if $(REPO_WEB_URL),$(REPO_WEB_URL)/blob/main/docs/runbooks.md)
KUBECTL       ?= kubectl
HELM          ?= helm
# doctor and watch are standard library only: the user's python3, no venv
PYTHON3       ?= python3
# CLUSTER=local: a node on this machine (tools/cluster, docs/cluster.md); its state dir, kubeconfig and kubectl
LOCAL_CLUSTER_DIR ?= $(HOME)/.cache/streamflow/cluster
export STREAMFLOW_CLUSTER_DIR := $(LOCAL_CLUSTER_DIR)
ifeq ($(CLUSTER),local)
export KUBECONFIG := $(LOCAL_CLUSTER_DIR)/node/kubeconfig/admin.conf
KUBECTL := $(HOME)/.cache/streamflow/tools/kubernetes-$(KUBE_BINARIES_VERSION)/kubectl
# the Helm the tests build (tools/toolchain.py: helm()), at HELM_VERSION
HELM := $(HOME)/.cache/streamflow/tools/helm-$(HELM_VERSION)/helm
endif

cluster: $(if $(filter local,$(CLUSTER)),venv) ## Create the local cluster at the Kubernetes version of k8s/versions.env (CLUSTER=kind|minikube|local)
	case "$(CLUSTER)" in \
	  kind) kind get clusters 2>/dev/null | grep -qx '$(CLUSTER_NAME)' || kind create cluster --name $(CLUSTER_NAME) --config k8s/kind-config.yaml --image $(KIND_NODE_IMAGE) ;; \
	  minikube) minikube -p $(CLUSTER_NAME) status >/dev/null 2>&1 || minikube start -p $(CLUSTER_NAME) --kubernetes-version=$(MINIKUBE_KUBERNETES_VERSION) --cpus=2 --memory=6g --cni=calico ;; \
	  local) $(PY) -m tools.cluster up ;; \
	  *) echo "CLUSTER must be kind, minikube or local, not '$(CLUSTER)'" >&2; exit 2 ;; \
	esac

# CLUSTER=local cannot fetch kps's chart or images: tools/cluster/monitoring.py builds and runs the same
# wiring (operator, Prometheus selecting release=$(KPS_RELEASE), kube-state-metrics; no Grafana), docs/cluster.md
monitoring: $(if $(filter local,$(CLUSTER)),venv) ## Install kube-prometheus-stack, pinned KPS_VERSION (CRDs applied server-side, Grafana password in a Secret); CLUSTER=local: its equivalent built here
ifeq ($(CLUSTER),local)
	$(PY) -m tools.cluster monitoring --release $(KPS_RELEASE) --namespace $(KPS_NAMESPACE)
else
	$(KUBECTL) create namespace $(KPS_NAMESPACE) --dry-run=client -o yaml | $(KUBECTL) apply -f -
	$(KUBECTL) -n $(KPS_NAMESPACE) get secret grafana-admin >/dev/null 2>&1 || \
	  $(KUBECTL) -n $(KPS_NAMESPACE) create secret generic grafana-admin --from-literal=admin-user=admin \
	    --from-literal=admin-password="$$(head -c 24 /dev/urandom | base64 | tr -dc 'A-Za-z0-9')"
	rm -rf $(KPS_CHART_DIR) && mkdir -p $(KPS_CHART_DIR)
	$(HELM) pull kube-prometheus-stack --repo $(KPS_REPO) --version $(KPS_VERSION) --untar --untardir $(KPS_CHART_DIR)
	$(KUBECTL) apply --server-side --force-conflicts -f $(KPS_CHART_DIR)/kube-prometheus-stack/charts/crds/crds/
	$(HELM) upgrade --install $(KPS_RELEASE) $(KPS_CHART_DIR)/kube-prometheus-stack -n $(KPS_NAMESPACE) \
	  --skip-crds -f k8s/kube-prometheus-stack.values.yaml --wait --timeout 15m
endif

# kind: `kind load docker-image` fails with Docker's containerd image store; an image archive works with both.
images: $(if $(filter local,$(CLUSTER)),venv) ## Build the API and jobs images, tagged IMAGE_TAG (content-addressed), and load them into the cluster
	case "$(CLUSTER)" in \
	  local) $(PY) -m tools.cluster images --tag $(IMAGE_TAG); exit ;; \
	  kind|minikube) ;; \
	  *) echo "CLUSTER must be kind, minikube or local, not '$(CLUSTER)'" >&2; exit 2 ;; \
	esac; \
	docker build --target api -t streamflow-api:$(IMAGE_TAG) .; \
	docker build --target jobs -t streamflow-jobs:$(IMAGE_TAG) .; \
	for image in $(IMAGES); do \
	  case "$(CLUSTER)" in \
	    kind) kind load docker-image --name $(CLUSTER_NAME) $$image || { \
	      archive=$$(mktemp); docker save -o $$archive $$image; \
	      kind load image-archive --name $(CLUSTER_NAME) $$archive; rm -f $$archive; } ;; \
	    minikube) minikube -p $(CLUSTER_NAME) image load $$image ;; \
	  esac; \
	done
	@echo "images tagged $(IMAGE_TAG): make deploy uses the same tag (IMAGE_TAG=... to deploy another)"

# No `helm --wait`: it also waits for every PVC to be Bound, and the drift reports' PVC binds only
# when the CronJob first runs (WaitForFirstConsumer, kind's and minikube's default class), so it
# would hang until the timeout. tools.watch waits instead, for the API's rollout and this
# revision's bootstrap Job, says what it waits for, and stops at the first failing pod with its
# log and the likely fix, within seconds.
deploy: ## Install or upgrade the chart (IMAGE_TAG), showing what it waits for; fails fast with the failing pod's log
	KUBECTL=$(KUBECTL) $(PYTHON3) -m tools.watch --namespace $(NAMESPACE) --selector app.kubernetes.io/instance=$(RELEASE) \
	  --rollout $(FULLNAME)-api --jobs app.kubernetes.io/component=bootstrap,app.kubernetes.io/instance=$(RELEASE) --timeout 1200 -- \
	$(HELM) upgrade --install $(RELEASE) charts/streamflow -n $(NAMESPACE) --create-namespace \
	  $(if $(filter local,$(CLUSTER)),-f k8s/local-values.yaml) \
	  --set api.image.tag=$(IMAGE_TAG),bootstrap.image.tag=$(IMAGE_TAG),drift.image.tag=$(IMAGE_TAG) \
	  --set serviceMonitor.additionalLabels.release=$(KPS_RELEASE) \
	  --set prometheusRule.additionalLabels.release=$(KPS_RELEASE) \
	  --set networkPolicy.prometheus.namespace=$(KPS_NAMESPACE) \
	  $(if $(RUNBOOK_URL),--set prometheusRule.runbookBaseUrl=$(RUNBOOK_URL)) \
	  --cleanup-on-fail $(HELM_ARGS)
	$(HELM) test $(RELEASE) -n $(NAMESPACE)

drift-now: ## Run the drift CronJob now as a Job; wait and print its decision
	job=$(FULLNAME)-drift-now-$$(date +%s); \
	$(KUBECTL) -n $(NAMESPACE) create job --from=cronjob/$(FULLNAME)-drift $$job; \
	KUBECTL=$(KUBECTL) $(PYTHON3) -m tools.watch --namespace $(NAMESPACE) --job $$job --timeout 1800; \
	$(KUBECTL) -n $(NAMESPACE) logs job/$$job --tail 3

status: ## Image tags running, last drift decision and retrain attempt (ConfigMap annotations), recent jobs, their last lines and events
	@echo "API pods:"; $(KUBECTL) -n $(NAMESPACE) get pods -l app.kubernetes.io/component=api,app.kubernetes.io/instance=$(RELEASE) \
	  -o jsonpath='{range .items[*]}  {.metadata.name}  {.spec.containers[0].image}  {.status.phase}{"\n"}{end}'
	@echo "CronJobs:"; $(KUBECTL) -n $(NAMESPACE) get cronjobs -l app.kubernetes.io/instance=$(RELEASE) \
	  -o jsonpath='{range .items[*]}  {.metadata.name}  {.spec.jobTemplate.spec.template.spec.containers[0].image}{"\n"}{end}'
	$(KUBECTL) -n $(NAMESPACE) get configmap $(FULLNAME)-drift-status -o go-template='{{range $$k, $$v := .metadata.annotations}}{{$$k}}={{$$v}}{{"\n"}}{{end}}' | grep '^drift.streamflow.io/' || echo "no decision recorded yet: make drift-now"
	$(KUBECTL) -n $(NAMESPACE) get jobs -l 'app.kubernetes.io/component in (drift,retrain,performance)',app.kubernetes.io/instance=$(RELEASE) --sort-by=.metadata.creationTimestamp
	for job in retrain performance; do $(KUBECTL) -n $(NAMESPACE) logs -l app.kubernetes.io/component=$$job,app.kubernetes.io/instance=$(RELEASE) --tail=2 2>/dev/null | grep '^\[' || true; done
	$(KUBECTL) -n $(NAMESPACE) get events --field-selector involvedObject.name=$(FULLNAME)-drift-status --sort-by=.lastTimestamp

ct-install: venv ## ct install of every charts/streamflow/ci/*-values.yaml on the current cluster, with helm test (needs make images and make monitoring's CRDs)
	$(PY) -m tools.chart_testing install --image-tag $(IMAGE_TAG) --kubectl $(KUBECTL) \
	  $(if $(filter local,$(CLUSTER)),--values k8s/local-values.yaml)

traffic: $(CLIENTS_VENV)/.synced ## Send N (default 500) bounded /predict requests to the in-cluster API through a port-forward (needs only the clients extra)
	$(KUBECTL) -n $(NAMESPACE) port-forward service/$(FULLNAME)-api 18000:8000 >/dev/null & forward=$$!; \
	trap "kill $$forward" EXIT; \
	$(CLIENTS_VENV)/bin/python -m tools.traffic --url http://127.0.0.1:18000 --requests $(N) --wait-seconds 30

grafana: ## Port-forward Grafana to 127.0.0.1:3000 (user admin; password in Secret grafana-admin)
	@echo "Grafana on http://127.0.0.1:3000 - password: $(KUBECTL) -n $(KPS_NAMESPACE) get secret grafana-admin -o jsonpath='{.data.admin-password}' | base64 -d"
	$(KUBECTL) -n $(KPS_NAMESPACE) port-forward service/$(KPS_RELEASE)-grafana 3000:80

prometheus: ## Port-forward Prometheus to 127.0.0.1:9090
	$(KUBECTL) -n $(KPS_NAMESPACE) port-forward service/prometheus-operated 9090:9090

doctor: ## Check the release's wiring to monitoring (CRDs, release labels, sidecar, targets, last drift run); exit 1 on a fault
	KUBECTL=$(KUBECTL) $(PYTHON3) -m tools.doctor --namespace $(NAMESPACE) --release $(RELEASE)

e2e: venv ## On the local node: cluster monitoring images deploy, then tests/e2e prove it (pods, API, CronJob, alerts, upgrade, doctor); down at the end
	$(PY) -m tools.e2e $(PYTEST_ARGS)

down: $(if $(filter local,$(CLUSTER)),venv) ## Delete the local cluster (CLUSTER=kind|minikube|local; local also restores the host)
	case "$(CLUSTER)" in \
	  kind) kind delete cluster --name $(CLUSTER_NAME) ;; \
	  minikube) minikube delete -p $(CLUSTER_NAME) ;; \
	  local) $(PY) -m tools.cluster down ;; \
	  *) echo "CLUSTER must be kind, minikube or local, not '$(CLUSTER)'" >&2; exit 2 ;; \
	esac

cluster-status: venv ## The local node's processes (pid, RSS), node and pods (CLUSTER=local)
	$(PY) -m tools.cluster status

cluster-test: venv ## Prove the local node (restricted pod, Service DNS, PVC as UID 10001, logs/exec/port-forward) and its monitoring (built on first use); starts it if needed
	$(PY) -m tools.cluster up
	STREAMFLOW_CLUSTER_TESTS=1 $(PY) -m pytest tests/cluster $(PYTEST_ARGS)

##@ Development
test-unit: venv ## The fast tier: seconds, no root, no apt, no Go builds, no servers but loopback ones in process
	$(PY) -m pytest tests/unit $(PYTEST_ARGS)

lint: venv ## ruff (lint + format), mypy, the import contracts of the layers (import-linter), and ct lint of the chart
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/lint-imports --no-logo
	$(VENV)/bin/mypy
	# chart-testing: yamale, yamllint and helm lint --strict with each ci/*-values.yaml (ct.yaml);
	# builds the pinned ct (and helm) from the Go module proxy on first use
	$(PY) -m tools.chart_testing lint

verify: lint ## lint, and every generated file equal to what its generator writes now
	$(PY) -m tools.monitoring.dashboards --check
	$(PY) -m tools.chart_docs --check

format: venv ## Apply ruff's fixes and formatting
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

venv: $(VENV)/.synced ## Create .venv from the hashed dev lock (uv pip sync): every extra, test tools

# The dev lock first (everything; the versions already locked are kept unless pyproject.toml moves
# them), then one lock per image constrained to it: a package in two locks has one version.
lock: $(UV) ## Re-resolve pinned dependencies into the hashed lock files (dev, and one per image)
	$(UV) pip compile pyproject.toml --extra dev --python-version 3.11 --generate-hashes -q -o requirements-dev.lock
	python3 -c 'import tomllib; print("\n".join(tomllib.load(open("pyproject.toml", "rb"))["project"]["optional-dependencies"]["clients"]))' | \
	  $(UV) pip compile - -c requirements-dev.lock --python-version 3.11 --generate-hashes -q -o requirements-clients.lock
	for image in api jobs; do \
	  $(UV) pip compile pyproject.toml --extra $$image -c requirements-dev.lock --python-version 3.11 --generate-hashes -q -o requirements-$$image.lock; \
	done

clean: ## Remove generated data and reports (keeps .venv)
	rm -rf $(DATA_DIR) reports/drift

$(UV):
	python3 -m venv $(TOOLS_DIR)
	$(TOOLS_DIR)/bin/pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)

$(VENV)/.synced: requirements-dev.lock | $(UV)
	$(UV) venv --quiet --allow-existing --python 3.11 $(VENV)
	$(UV) pip sync --quiet --compile-bytecode --python $(PY) requirements-dev.lock
	touch $@

# The load clients' own venv (make traffic): the `clients` extra only, not the whole dev lock
$(CLIENTS_VENV)/.synced: requirements-clients.lock | $(UV)
	$(UV) venv --quiet --allow-existing --python 3.11 $(CLIENTS_VENV)
	$(UV) pip sync --quiet --python $(CLIENTS_VENV)/bin/python requirements-clients.lock
	touch $@

$(BOOTSTRAPPED):
	$(PY) -m jobs.bootstrap
	touch $@

.PHONY: help demo test test-unit lint verify format serve soak bootstrap drift retrain performance train bench observe dashboards chart-docs status-local venv lock clean \
	cluster monitoring images deploy ct-install drift-now status traffic grafana prometheus down cluster-status cluster-test
