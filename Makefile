# specdenoise - run `make help` for the targets.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 2>/dev/null || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PORT ?= 5000
export GX_ANALYTICS_ENABLED := false
export DVC_NO_ANALYTICS := 1
export TF_CPP_MIN_LOG_LEVEL := 3
export PATH := $(CURDIR)/$(BIN):$(PATH)

.DEFAULT_GOAL := help

.PHONY: help
help: ## Show this help
	@grep -hE '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*?## "}; {printf "  \033[36m%-14s\033[0m %s\n", $$1, $$2}'

$(STAMP): pyproject.toml requirements.lock
	@$(PYTHON) -c 'import sys; assert sys.version_info[:2] == (3, 11), f"specdenoise needs Python 3.11, found {sys.version.split()[0]} at {sys.executable}"'
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -c requirements.lock -e '.[dev]'
	@touch $(STAMP)

.PHONY: install
install: $(STAMP) ## Create .venv and install the pinned stack and the package (once)

.PHONY: lint
lint: install ## Lint and check the formatting (ruff) of src/ and tests/
	$(BIN)/ruff check src tests
	$(BIN)/ruff format --check src tests

.PHONY: test
test: install lint ## Run the test suite (unit, data, integration; not the slow tests)
	$(BIN)/python -m pytest -n 2 --dist loadfile --no-loadscope-reorder -q

.PHONY: test-all
test-all: install ## Run every test, slow ones included
	$(BIN)/python -m pytest -n 2 --dist loadfile --no-loadscope-reorder -q -m ''

.PHONY: data
data: install ## Run the data stages (dvc repro up to the data summary)
	$(BIN)/dvc repro summary

.PHONY: benchmark
benchmark: install ## The main job: the full pipeline (dvc repro) on the embedded universe, then the results [PROFILE=smoke|default|paper]
ifdef PROFILE
	$(BIN)/specdenoise profile $(PROFILE) --out params.yaml
endif
	$(BIN)/dvc repro
	@cat reports/leaderboard.md

.PHONY: bench
bench: install ## Performance benchmarks (results in reports/bench_*.json)
	$(BIN)/specdenoise bench universe --n 100000 --out reports/bench_universe.json
	$(BIN)/specdenoise bench train --backends tensorflow,jax --out reports/bench_train.json
	$(BIN)/specdenoise bench pipeline --out reports/bench_pipeline.json
	$(BIN)/specdenoise bench linefit --n 500 --out reports/bench_linefit.json
	$(BIN)/specdenoise bench denoise data/external/desi/coadd-*.fits --targets 500 --copies 8 --workers 1,2 --out reports/bench_denoise.json
	$(BIN)/specdenoise bench posterior --out reports/posterior.json --md reports/posterior.md

.PHONY: ui
ui: install ## Serve the MLflow UI for this project's store on 127.0.0.1:$(PORT)
	$(BIN)/mlflow ui --backend-store-uri sqlite:///$(CURDIR)/mlflow.db --default-artifact-root $(CURDIR)/mlartifacts --host 127.0.0.1 --port $(PORT)

.PHONY: clean
clean: ## Remove generated data and reports (keeps .venv)
	rm -rf data/raw data/interim data/processed models reports/*.json reports/*.md reports/*.csv reports/figures .pytest_cache
