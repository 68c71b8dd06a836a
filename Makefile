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
# Runs a command with the local servers' addresses exported.
WITH_ENV := eval "$$($(INFRA) env)" &&

.PHONY: help
help: ## list the targets
	@grep -hE '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-16s %s\n", $$1, $$2}'

.PHONY: dev
dev: prereqs ## run Ordexa locally: the real servers, migrations, topics, api and relay (Ctrl-C stops)
	@bash infra/dev.sh

.PHONY: test
test: prereqs lint infra-up ## format/lint checks, unit and integration tests against the real servers
	bash infra/test-infra.sh
	$(WITH_ENV) cargo test --workspace --locked

.PHONY: lint
lint: ## cargo fmt --check and clippy with warnings as errors
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets --locked -- -D warnings

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

.PHONY: bench bench-api bench-relay
bench: bench-api bench-relay ## run every benchmark (bench-api, then bench-relay); results land in bench/results/
bench-api: ## open-loop load on POST /api/v1/orders next to pgbench with the same SQL; writes bench/results/api-*.md
	@bash bench/api.sh
bench-relay: ## the outbox relay: drain 200,000 rows, steady load, producer and SQL ceilings; writes bench/results/relay-*.md
	@bash bench/relay.sh
