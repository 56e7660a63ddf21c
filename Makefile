# Lakehouse platform: one command to set up and run, one to test.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
EXTRAS ?= dev,spark

# Prefect's settings are in prefect.toml (read by any Prefect process started here, make or not).
export SODA_CORE_TELEMETRY_ENABLED := false

.DEFAULT_GOAL := help
.PHONY: help install browser run test lint types imports pytest screenshots bench clean

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-12s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[$(EXTRAS)]'
	touch $(STAMP)

install: $(STAMP) ## Create .venv and install the project with its dev tools (idempotent)

# Debian's chromium loads the report site's pages in the tests; the tests skip (saying why) without it.
browser: ## Install headless Chromium for the report-site tests (Debian's chromium package, as root)
	@command -v chromium >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; } \
		|| echo "chromium could not be installed: the report-site browser tests will skip"

run: install ## Run the daily flow on the embedded default (seeds the demo landing zone if empty)
	$(PY) -m flows.daily

lint: install ## ruff lint and format check
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

types: install ## strict mypy on the packages
	$(VENV)/bin/mypy

imports: install ## import-linter layer contracts
	$(VENV)/bin/lint-imports

pytest: install browser ## the test suite
	$(PY) -m pytest

screenshots: install browser ## Retake the README's report-site screenshots (docs/images) from a test run
	REPORT_SCREENSHOTS=docs/images $(PY) -m pytest tests/flows/test_report_site.py -k chromium

test: lint types imports pytest ## Everything CI runs: lint, types, import contracts, tests

bench: install ## Benchmark at TPC-H SF1 (long): bench/results/sf1.json; report: python -m bench.report FILE
	$(PY) -m bench --scale 1 --out bench/results/sf1.json

clean: ## Remove the local lakehouse state (not the venv)
	rm -rf .lakehouse
