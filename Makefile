# Every entry point a person uses. `make help` lists them.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

# Downloads and build outputs live outside the checkout so a fresh clone reuses them.
export ORDEXA_CACHE_DIR ?= $(or $(XDG_CACHE_HOME),$(HOME)/.cache)/ordexa
export CARGO_TARGET_DIR ?= $(ORDEXA_CACHE_DIR)/target
export CARGO_TERM_COLOR ?= never
# Python tools the tests call (installed by `make prereqs`).
export ORDEXA_OPENAPI_VALIDATOR ?= $(ORDEXA_CACHE_DIR)/venv/bin/openapi-spec-validator

INFRA := bash infra/infra.sh
K8S := bash infra/k8s.sh
# Runs a command with the local servers' addresses and the test API server's KUBECONFIG exported.
WITH_ENV := eval "$$($(INFRA) env)" && eval "$$($(K8S) env)" &&

.PHONY: help
help: ## list the targets
	@grep -hE '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-16s %s\n", $$1, $$2}'

.PHONY: dev
dev: prereqs ## run Ordexa locally: the real servers, migrations, schema, topics, `ordexa dev` and `ordexa web` (Ctrl-C stops)
	@bash infra/dev.sh

.PHONY: test
test: prereqs lint infra-up k8s-up ## format/lint checks, unit and integration tests against the real servers, the API's contract (schemathesis)
	bash infra/test-infra.sh
	$(WITH_ENV) cargo test --workspace --locked
	bash workloads/api/schemathesis/run.sh
	$(MAKE) --no-print-directory bench-smoke
	$(MAKE) --no-print-directory test-frontend
	$(MAKE) --no-print-directory test-e2e

# The SPA: npm's cache lives with the other caches; `npm ci` installs exactly package-lock.json.
NPM := cd frontend && npm_config_cache=$(ORDEXA_CACHE_DIR)/npm npm
# npm ci only when node_modules is missing or older than the lock file.
NPM_CI_IF_NEEDED := if [[ ! -f frontend/node_modules/.package-lock.json || frontend/package-lock.json -nt frontend/node_modules/.package-lock.json ]]; then ($(NPM) ci --no-audit --no-fund --loglevel=error); fi

.PHONY: frontend test-frontend test-e2e
frontend: ## install the SPA's packages (npm ci) and build it into frontend/dist
	$(NPM) ci --no-audit --no-fund --loglevel=error
	$(NPM) run build
test-frontend: ## the SPA's eslint, tsc --noEmit and Vitest unit/component tests
	$(NPM_CI_IF_NEEDED)
	$(NPM) run lint
	$(NPM) run typecheck
	$(NPM) test
test-e2e: infra-up ## the whole system on spare ports with fresh state, driven by Chromium; screenshots in frontend/test-output/
	bash frontend/e2e/stack.sh

.PHONY: lint
lint: ## cargo fmt --check and clippy with warnings as errors (the workspace, then bench/, a workspace of its own)
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets --locked -- -D warnings
	cargo fmt --manifest-path bench/Cargo.toml -- --check
	cargo clippy --manifest-path bench/Cargo.toml --all-targets --locked -- -D warnings

.PHONY: build
build: ## build every binary (debug)
	cargo build --workspace --locked

.PHONY: prereqs
prereqs: ## install the Debian packages the build and the servers need
	@bash infra/prereqs.sh

.PHONY: infra-up infra-down infra-reset infra-status infra-env
infra-up: ## install what is missing, start what is stopped, wait until each server answers
	@$(INFRA) up
infra-down: ## stop the servers (data is kept)
	@$(INFRA) down
infra-reset: ## stop the servers and wipe their data
	@$(INFRA) reset
infra-status: ## say what runs where
	@$(INFRA) status
infra-env: ## print export lines for the running servers: eval "$(make -s infra-env)"
	@$(INFRA) env

.PHONY: bench bench-api bench-relay bench-e2e bench-smoke
bench: bench-api bench-relay bench-e2e ## run every benchmark (release); the latest result of each in bench/results/
bench-api: ## API create vs pgbench running the same transaction, rising rates; writes bench/results/api.{md,json}
	@bash bench/api.sh
bench-relay: ## the relay vs Debezium Server: drain, commit→Kafka at a fixed load, memory; the relay's ceilings; bench/results/relay.*
	@bash bench/relay.sh
bench-e2e: ## projector drain vs the raw driver; api+relay+projector: commit→visible in Cassandra, memory; bench/results/e2e.*
	@bash bench/e2e.sh
bench-smoke: ## every benchmark in seconds, tiny sizes, debug build (make test runs it); results stay in ~/.cache/ordexa/bench
	@BENCH_SMOKE=1 bash bench/api.sh && BENCH_SMOKE=1 bash bench/relay.sh && BENCH_SMOKE=1 bash bench/e2e.sh

# ---- The chaos suite (docs/chaos.md): servers of its own, never the development servers ------

# Its own state folder and spare ports: it kills these servers, so it never shares them.
CHAOS_STATE_DIR ?= /tmp/ordexa-chaos
# debug (default) or release: the profile of both the suite and the ordexa binary it runs.
CHAOS_PROFILE ?= debug
CHAOS_ARGS ?=
CHAOS_ENV := ORDEXA_STATE_DIR=$(CHAOS_STATE_DIR) ORDEXA_PG_PORT=56432 ORDEXA_KAFKA_PORT=29092 \
  ORDEXA_KAFKA_CONTROLLER_PORT=29093 ORDEXA_CASSANDRA_PORT=29042 ORDEXA_CASSANDRA_STORAGE_PORT=27000 \
  ORDEXA_CASSANDRA_JMX_PORT=27199
.PHONY: chaos
chaos: prereqs ## kill -9/SIGSTOP every workload and server under order load, then write vs read model and topic (~8 min a run; not in make test); CHAOS_ARGS="--runs 10"
	cargo build -p ordexa --locked $(if $(filter release,$(CHAOS_PROFILE)),--release) --bin ordexa --example chaos
	export $(CHAOS_ENV); trap '$(INFRA) down' EXIT; $(INFRA) up; eval "$$($(INFRA) env)"; \
	  "$(CARGO_TARGET_DIR)/$(CHAOS_PROFILE)/examples/chaos" $(CHAOS_ARGS) 2>&1 | tee "$(CHAOS_STATE_DIR)/chaos-$$(date +%Y%m%dT%H%M%S).log"

# ---- Operator: a real API server for its tests, the CRD, and the kind cluster ------------------

.PHONY: k8s-build k8s-up k8s-down k8s-reset k8s-status k8s-env
k8s-build: ## build etcd, kube-apiserver, kube-controller-manager and helm from their Go modules (cached)
	@$(K8S) build
k8s-up: ## start the test control plane on 127.0.0.1 (builds it first when missing)
	@$(K8S) up
k8s-down: ## stop the test control plane (data is kept)
	@$(K8S) down
k8s-reset: ## stop the test control plane and wipe its state and certificates
	@$(K8S) reset
k8s-status: ## say what of the test control plane runs
	@$(K8S) status
k8s-env: ## print export KUBECONFIG=... for the test API server: eval "$(make -s k8s-env)"
	@$(K8S) env

.PHONY: crds operator-test
crds: ## regenerate the OrderingSystem CRD (crds/ and the chart) from operator/src/crd.rs
	cargo run -q -p ordexa-operator --locked -- crd > crds/orderingsystems.ordexa.io.yaml
	cp crds/orderingsystems.ordexa.io.yaml charts/ordexa-operator/files/orderingsystems.ordexa.io.yaml
operator-test: k8s-up ## the operator's unit and integration tests (real API server + Kafka)
	@$(INFRA) up kafka
	$(WITH_ENV) cargo test -p ordexa-operator --locked

# ---- A real single-node cluster on this machine (no Docker): infra/cluster.sh ---------------

CLUSTER := bash infra/cluster.sh
.PHONY: cluster-build cluster-up cluster-down cluster-reset cluster-status cluster-env cluster-e2e
cluster-build: ## build the cluster's binaries (control plane, kubelet, kube-proxy, CoreDNS, kubectl, pause) from Go modules
	@$(CLUSTER) build
cluster-up: ## start the single-node cluster: control plane, containerd, kubelet, kube-proxy, CoreDNS (root; pods on bridge ordexa0)
	@$(CLUSTER) up
cluster-down: ## stop the cluster and every pod (state is kept)
	@$(CLUSTER) down
cluster-reset: ## stop the cluster and wipe its state, images and bridge
	@$(CLUSTER) reset
cluster-status: ## say what of the cluster runs, and its node
	@$(CLUSTER) status
cluster-env: ## print export KUBECONFIG=... for the cluster: eval "$(make -s cluster-env)"
	@$(CLUSTER) env
cluster-e2e: ## on the cluster: chart, Secrets, one OrderingSystem, Ready, order in Chromium, scale, roll, delete
	@bash infra/cluster-e2e.sh

# Machines with Docker only (kind): https://kind.sigs.k8s.io
KIND_CLUSTER ?= ordexa
IMAGE_TAG ?= dev
.PHONY: kind-up images kind-load deploy kind-e2e
kind-up: ## create the kind cluster from kind-config.yaml
	kind create cluster --config kind-config.yaml --name $(KIND_CLUSTER)
images: ## build ordexa:dev and ordexa-operator:dev without Docker (infra/images.sh); archives in ~/.cache/ordexa/images
	ORDEXA_IMAGE_TAG=$(IMAGE_TAG) bash infra/images.sh build
kind-load: ## load the image archives of make images into the kind cluster
	kind load image-archive $(ORDEXA_CACHE_DIR)/images/ordexa-operator-$(IMAGE_TAG).tar --name $(KIND_CLUSTER)
	kind load image-archive $(ORDEXA_CACHE_DIR)/images/ordexa-$(IMAGE_TAG).tar --name $(KIND_CLUSTER)
deploy: ## install or upgrade the operator with its Helm chart in namespace ordexa-system
	helm upgrade --install ordexa-operator charts/ordexa-operator --namespace ordexa-system --create-namespace \
	  --set image.tag=$(IMAGE_TAG) --set image.pullPolicy=Never --wait
kind-e2e: kind-up images kind-load deploy ## on kind: install, apply examples/shop.yaml (its Postgres/Kafka/Cassandra must exist), wait for Ready
	kubectl apply -f examples/shop.yaml
	kubectl -n shop wait orderingsystem/shop --for=condition=Ready --timeout=10m
