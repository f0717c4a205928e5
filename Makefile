# Everything a fresh machine with Python 3.11+ needs: `make demo` and `make test`
# create .venv from the lock file (uv.lock) and run. Nothing is fetched at run time.
PYTHON ?= python3
UV_VERSION := 0.13.9
UV := .uv/bin/uv
VENV := .venv
BIN := $(VENV)/bin
export UV_PYTHON_DOWNLOADS := never
export UV_PROJECT_ENVIRONMENT := $(VENV)

.DEFAULT_GOAL := help
.PHONY: help setup demo test test-browser lint market-data sim bench failover-drill clean

help: ## Show the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'

$(UV):
	$(PYTHON) -m pip install --quiet --disable-pip-version-check --target .uv uv==$(UV_VERSION)

$(VENV)/.synced: pyproject.toml uv.lock | $(UV)
	$(UV) sync --frozen --python $(PYTHON)
	@touch $@

# The native quote path (docs/architecture.md, "Native quote path"), compiled in place
# with the machine's C compiler; without one the Python path runs, with the same results.
$(VENV)/.native: $(wildcard libs/market_data/native/*.[ch]) libs/market_data/native/build.py $(VENV)/.synced
	$(BIN)/python -m libs.market_data.native.build
	@touch $@

setup: $(VENV)/.synced $(VENV)/.native ## Create .venv from the lock file, build the native path

demo: setup ## Simulator + private Redis + service on :8004, live prices for AAPL MSFT GOOGL
	$(BIN)/market-data demo

test: setup ## Lint, type-check and run the whole test suite
	$(BIN)/ruff check libs apps tests
	$(BIN)/ruff format --check libs apps tests
	$(BIN)/mypy
	$(BIN)/pytest -n 2

test-browser: setup ## The status page in headless chromium (needs /usr/bin/chromium, or CHROMIUM=...)
	$(BIN)/pytest -m browser tests/browser -rP --show-capture=stdout

lint: setup ## ruff + mypy only
	$(BIN)/ruff check libs apps tests
	$(BIN)/ruff format --check libs apps tests
	$(BIN)/mypy

market-data: setup ## Run the service against Alpaca (needs ALPACA_API_KEY / ALPACA_SECRET_KEY)
	$(BIN)/market-data serve

sim: setup ## Run the Alpaca-protocol simulator on ws://127.0.0.1:8765
	$(BIN)/market-data sim

status: setup ## Health, subscriptions and real-time P&L of the service on :8004 (API=...)
	$(BIN)/market-data status --api $(or $(API),http://127.0.0.1:8004)

bench: setup ## Throughput/latency benchmark (simulator -> service pipeline -> Redis -> subscriber)
	$(BIN)/market-data bench

failover-drill: setup ## 10 SIGKILL + 10 SIGTERM leader failovers: price gap p50/max, connections (DRILL_ARGS="--release-delay 1.0")
	$(BIN)/python -m apps.bench.failover $(DRILL_ARGS)

clean: ## Remove the virtualenv and caches
	rm -rf $(VENV) .uv .pytest_cache .mypy_cache .ruff_cache
