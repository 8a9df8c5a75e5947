# BESH — see README.md. `make help` lists the targets.
SHELL := /bin/bash
.DEFAULT_GOAL := help

NPM ?= npm
PORT ?= 5000
DATA_DIR ?= ./data

.PHONY: help install build quick-start stop down logs health status test lint typecheck unit bench clean nginx-for-tests chromium-for-tests \
        quick-start-8gpu up up-8gpu up-mock down-8gpu down-mock rebuild rebuild-8gpu logs-8gpu health-8gpu status-8gpu validate-env validate-env-8gpu \
        up-cluster down-cluster logs-cluster health-cluster status-cluster validate-env-cluster

# Docker deployments (docs/deployment.md). `docker compose` v2, or COMPOSE="docker-compose".
COMPOSE ?= docker compose
COMPOSE_1GPU := $(COMPOSE) -f docker-compose.yml
COMPOSE_8GPU := $(COMPOSE) -f docker-compose-8gpu.yml
COMPOSE_MOCK := $(COMPOSE) -f docker-compose-mock.yml
COMPOSE_CLUSTER := $(COMPOSE) -f docker-compose-cluster.yml
CLUSTER_REPLICAS := besh-1 besh-2 besh-3
HAVE_DOCKER = command -v docker >/dev/null 2>&1 && docker info >/dev/null 2>&1

help: ## Show all available commands
	@grep -E '^[a-zA-Z0-9_-]+:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*## "}; {printf "  \033[36m%-16s\033[0m %s\n", $$1, $$2}'

# `npm install` rather than `npm ci`: the registry mirror these machines use lacks some
# other-platform optional packages (e.g. rollup's android builds), so the lock cannot list them
# and `npm ci` refuses it; `npm install` installs the locked versions all the same.
node_modules/.install-stamp: package.json package-lock.json
	$(NPM) install --no-audit --no-fund
	@touch $@

install: node_modules/.install-stamp ## Install dependencies when package.json or package-lock.json changed

dist/.build-stamp: node_modules/.install-stamp tsconfig.json tsconfig.build.json $(shell find src -name '*.ts' 2>/dev/null) \
                   $(shell find web -path web/dist -prune -o -type f -print 2>/dev/null)
	$(NPM) run build
	@touch $@

build: dist/.build-stamp ## Compile TypeScript to dist/

quick-start: build ## Install, build and start BESH on :5000 (and `besh mock` on :8000 when no inference server answers there)
	@PORT=$(PORT) BESH_DATA_DIR=$(DATA_DIR) scripts/quick-start.sh

stop: ## Stop what quick-start started
	@BESH_DATA_DIR=$(DATA_DIR) scripts/stop.sh

# down, logs, health and status serve both ways of running BESH: what `make quick-start` started
# (local processes, ./data) and the single-GPU compose stack of `make up`.
down: stop ## Stop what quick-start started, and the docker compose stack of `make up` if Docker runs
	@if $(HAVE_DOCKER); then $(COMPOSE_1GPU) down; fi

logs: ## Follow BESH's log (quick-start's, or the compose stack's when that runs)
	@if [ -f $(DATA_DIR)/besh.pid ] && kill -0 "$$(cat $(DATA_DIR)/besh.pid)" 2>/dev/null; then tail -n 100 -F $(DATA_DIR)/besh.log; \
	 elif $(HAVE_DOCKER); then $(COMPOSE_1GPU) logs -f --tail=100; \
	 else tail -n 100 -F $(DATA_DIR)/besh.log; fi

health: ## Check BESH's health endpoint (GET /health on :$(PORT))
	@curl -fsS http://127.0.0.1:$(PORT)/health && echo

status: ## Show service status (containers when Docker runs, then BESH's /health)
	@if $(HAVE_DOCKER); then $(COMPOSE_1GPU) ps; fi
	@curl -fsS http://127.0.0.1:$(PORT)/health && echo || echo "BESH does not answer on :$(PORT)"

# ---- Docker: one GPU (docker-compose.yml), eight GPUs (docker-compose-8gpu.yml), no GPU (docker-compose-mock.yml)

validate-env: ## Check .env / the environment for the single-GPU deployment
	@scripts/validate-env.sh 1gpu

validate-env-8gpu: ## Check .env, the GPUs and nginx-8gpu.conf for the 8-GPU deployment
	@scripts/validate-env.sh 8gpu

up: validate-env ## Start vLLM + BESH with docker compose (docker-compose.yml)
	$(COMPOSE_1GPU) up -d --build

up-8gpu: validate-env-8gpu ## Start 8 vLLM + nginx + BESH (docker-compose-8gpu.yml)
	$(COMPOSE_8GPU) up -d --build

up-mock: ## Start BESH + the simulated inference server in Docker, no GPU (docker-compose-mock.yml)
	$(COMPOSE_MOCK) up -d --build

down-8gpu: ## Stop the 8-GPU stack
	$(COMPOSE_8GPU) down

down-mock: ## Stop the mock stack
	$(COMPOSE_MOCK) down

rebuild: ## Rebuild the BESH image without cache and restart the single-GPU stack
	$(COMPOSE_1GPU) build --no-cache besh
	$(COMPOSE_1GPU) up -d --force-recreate

rebuild-8gpu: ## Rebuild the BESH image without cache and restart the 8-GPU stack
	$(COMPOSE_8GPU) build --no-cache besh
	$(COMPOSE_8GPU) up -d --force-recreate

logs-8gpu: ## Follow the 8-GPU stack's logs
	$(COMPOSE_8GPU) logs -f --tail=100

health-8gpu: ## Check BESH, nginx and each of the eight vLLM servers
	@ok=1; \
	 curl -fsS http://127.0.0.1:$(PORT)/health >/dev/null && echo "besh   :$(PORT)  healthy" || { echo "besh   :$(PORT)  DOWN"; ok=0; }; \
	 curl -fsS http://127.0.0.1:8000/nginx-health >/dev/null && echo "nginx  :8000  healthy" || { echo "nginx  :8000  DOWN"; ok=0; }; \
	 for p in 8001 8002 8003 8004 8005 8006 8007 8008; do \
	   curl -fsS http://127.0.0.1:$$p/health >/dev/null && echo "vllm   :$$p  healthy" || { echo "vllm   :$$p  DOWN"; ok=0; }; \
	 done; [ $$ok = 1 ]

status-8gpu: ## Show the 8-GPU stack's containers and health
	$(COMPOSE_8GPU) ps
	@$(MAKE) --no-print-directory health-8gpu || true

quick-start-8gpu: validate-env-8gpu ## 8-GPU setup: validate, start, wait until healthy (model loading takes minutes)
	$(COMPOSE_8GPU) up -d --build
	@echo "Waiting for the eight vLLM servers, nginx and BESH (up to 20 minutes while models load)…"
	@for i in $$(seq 1 240); do \
	   if $(MAKE) --no-print-directory health-8gpu >/dev/null 2>&1; then $(MAKE) --no-print-directory health-8gpu; \
	     echo "BESH is running: dashboard http://localhost:$(PORT)/ , API base URL http://localhost:$(PORT)/v1"; exit 0; fi; \
	   sleep 5; \
	 done; $(MAKE) --no-print-directory health-8gpu; echo "Not healthy yet: make logs-8gpu" >&2; exit 1

# ---- Docker: a cluster (docker-compose-cluster.yml): three replicas, PostgreSQL, MinIO, nginx on :$(PORT)

validate-env-cluster: ## Check .env for the cluster: credentials, PostgreSQL/S3 URLs, nginx-cluster.conf
	@scripts/validate-env.sh cluster

up-cluster: validate-env-cluster ## Start 3 BESH replicas + PostgreSQL + MinIO + nginx (docker-compose-cluster.yml)
	$(COMPOSE_CLUSTER) up -d --build

down-cluster: ## Stop the cluster (data volumes are kept; `docker compose -f docker-compose-cluster.yml down -v` removes them)
	$(COMPOSE_CLUSTER) down

logs-cluster: ## Follow the cluster's logs (every replica, nginx, PostgreSQL, MinIO)
	$(COMPOSE_CLUSTER) logs -f --tail=100

# The replicas are not published: each is asked from inside its own container.
health-cluster: ## Check nginx, BESH through nginx, and each replica's /health
	@ok=1; \
	 curl -fsS http://127.0.0.1:$(PORT)/nginx-health >/dev/null && echo "nginx   :$(PORT)  healthy" || { echo "nginx   :$(PORT)  DOWN"; ok=0; }; \
	 curl -fsS http://127.0.0.1:$(PORT)/health >/dev/null && echo "besh    via nginx  healthy" || { echo "besh    via nginx  DOWN"; ok=0; }; \
	 for r in $(CLUSTER_REPLICAS); do \
	   $(COMPOSE_CLUSTER) exec -T $$r node -e "fetch('http://127.0.0.1:5000/health').then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))" \
	     && echo "$$r  healthy" || { echo "$$r  DOWN"; ok=0; }; \
	 done; [ $$ok = 1 ]

status-cluster: ## Show the cluster's containers and health
	$(COMPOSE_CLUSTER) ps
	@$(MAKE) --no-print-directory health-cluster || true

lint: install ## Lint (eslint)
	$(NPM) run lint

typecheck: install ## Typecheck (tsc --noEmit)
	$(NPM) run typecheck

unit: build ## Run the test suite only
	$(NPM) test

# The deployment and topology tests run Debian's nginx; install it when we can (root).
nginx-for-tests:
	@command -v nginx >/dev/null 2>&1 || { \
	   if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	     (apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y nginx-light) || DEBIAN_FRONTEND=noninteractive apt-get install -y nginx; \
	   else echo "nginx is not installed and this is not root with apt-get: the nginx tests will be skipped"; fi; }

# The dashboard's browser test drives Debian's Chromium (playwright-core never downloads one).
chromium-for-tests:
	@command -v chromium >/dev/null 2>&1 || (apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y chromium)

test: install nginx-for-tests chromium-for-tests lint typecheck build ## Install if needed, lint, typecheck, build and run all tests
	$(NPM) test

bench: build ## Run the benchmark (not a test); ONLY=cluster (or any scenario list), QUICK=1
	node dist/bench/run.js $(if $(ONLY),--only $(ONLY)) $(if $(QUICK),--quick)

clean: ## Remove build output (keeps ./data)
	rm -rf dist web/dist
