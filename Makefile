# Lakehouse platform: one command to set up and run, one to test.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
JARS := .jars
JARS_STAMP := $(JARS)/.fetched-stamp
POMS := infra/jars/pom.xml infra/jars/spark-s3/pom.xml infra/jars/iceberg-rest/pom.xml
EXTRAS ?= dev,spark

# Prefect's settings are in prefect.toml (read by any Prefect process started here, make or not).
export SODA_CORE_TELEMETRY_ENABLED := false

.DEFAULT_GOAL := help
.PHONY: help install jars browser run test lint types imports pytest screenshots bench clean

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-12s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[$(EXTRAS)]'
	touch $(STAMP)

# Without Maven the jars are skipped: Spark on S3 and the REST catalog tests then skip, saying why.
$(JARS_STAMP): $(POMS)
	@if command -v mvn >/dev/null; then \
		rm -rf $(JARS)/spark-s3 $(JARS)/iceberg-rest && \
		mvn -B -q -Dstyle.color=never -f infra/jars/pom.xml -Djars.dir=$(abspath $(JARS)) dependency:copy-dependencies && touch $@; \
	else echo "mvn not found: no jars for Spark on S3 and the Iceberg REST catalog"; fi

jars: $(JARS_STAMP) ## Fetch the jars (hadoop-aws for Spark, an Iceberg REST catalog) from Maven into .jars/

install: $(STAMP) $(JARS_STAMP) ## Create .venv, install the project with its dev tools, fetch the jars (idempotent)

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
