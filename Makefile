# BESH — see README.md. `make help` lists the targets.
SHELL := /bin/bash
.DEFAULT_GOAL := help

NPM ?= npm
PORT ?= 5000
DATA_DIR ?= ./data

.PHONY: help install build quick-start stop down logs health status test lint typecheck unit bench clean

help: ## Show all available commands
	@grep -E '^[a-zA-Z0-9_-]+:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*## "}; {printf "  \033[36m%-16s\033[0m %s\n", $$1, $$2}'

# `npm install` rather than `npm ci`: the registry mirror these machines use lacks some
# other-platform optional packages (e.g. rollup's android builds), so the lock cannot list them
# and `npm ci` refuses it; `npm install` installs the locked versions all the same.
node_modules/.install-stamp: package.json package-lock.json
	$(NPM) install --no-audit --no-fund
	@touch $@

install: node_modules/.install-stamp ## Install dependencies (npm ci) when package-lock.json changed

dist/.build-stamp: node_modules/.install-stamp tsconfig.json tsconfig.build.json $(shell find src -name '*.ts' 2>/dev/null)
	$(NPM) run build
	@touch $@

build: dist/.build-stamp ## Compile TypeScript to dist/

quick-start: build ## Install, build and start BESH on :5000 (and `besh mock` on :8000 when no inference server answers there)
	@PORT=$(PORT) BESH_DATA_DIR=$(DATA_DIR) scripts/quick-start.sh

stop: ## Stop what quick-start started
	@BESH_DATA_DIR=$(DATA_DIR) scripts/stop.sh

down: stop ## Same as stop (the original's name)

logs: ## Follow BESH's log
	@tail -n 100 -F $(DATA_DIR)/besh.log

health: ## Check BESH's health endpoint
	@curl -fsS http://127.0.0.1:$(PORT)/health && echo

status: health ## Show service status

lint: install ## Lint (eslint)
	$(NPM) run lint

typecheck: install ## Typecheck (tsc --noEmit)
	$(NPM) run typecheck

unit: build ## Run the test suite only
	$(NPM) test

test: install lint typecheck build ## Install if needed, lint, typecheck, build and run all tests
	$(NPM) test

bench: build ## Run the benchmark (not a test)
	node dist/bench/run.js

clean: ## Remove build output (keeps ./data)
	rm -rf dist
