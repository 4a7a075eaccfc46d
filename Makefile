# Two commands do all set-up on a fresh machine: `make run` and `make test`.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEV_STAMP := $(VENV)/.installed-dev
export MILLSTREAM_HOME ?= $(HOME)/millstream

.PHONY: run test lint bench chaos screenshots browser clean

CHROMIUM := /usr/bin/chromium

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e .
	touch $@

$(DEV_STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e '.[dev]'
	touch $@ $(STAMP)

## run: install, then run the demo pipelines on the embedded SQLite default (Ctrl-C stops);
##      a sample CSV dropped into $MILLSTREAM_HOME/incoming shows asset-driven scheduling
run: $(STAMP)
	@mkdir -p "$(MILLSTREAM_HOME)/incoming"
	@cp examples/data/orders.csv "$(MILLSTREAM_HOME)/incoming/orders_$$(date +%Y%m%d_%H%M%S).csv"
	$(BIN)/millstream standalone --dags-folder examples --trigger process_daily_files --unpause ingest_arrivals

## test: install dev extras (and Debian's Chromium for the browser tests), run the whole suite
# Two workers, one test file each at a time (the tests use their own schemas, queues and
# ports, and a module's fixtures stay in one process). The schemathesis test is run on its
# own: its 44 API operations share one test id, which pytest-xdist would run only once.
test: $(DEV_STAMP) browser
	$(BIN)/pytest -n 2 --dist loadfile --ignore tests/api/test_schema_fuzz.py --ignore tests/api_v2/test_schema_fuzz_v2.py
	$(BIN)/pytest -q tests/api/test_schema_fuzz.py tests/api_v2/test_schema_fuzz_v2.py

## browser: Debian's Chromium for the Playwright tests (never a downloaded browser)
browser:
	@test -x $(CHROMIUM) || { echo "installing Debian's chromium for the browser tests"; \
	  apt-get install -y -q chromium >/dev/null 2>&1 || { apt-get update -q >/dev/null && apt-get install -y -q chromium >/dev/null; } \
	  || echo "could not install chromium: the browser tests will be skipped (or fail in CI)"; }

## screenshots: the browser tests again, saving the main pages to docs/screenshots/
screenshots: $(DEV_STAMP) browser
	MILLSTREAM_SCREENSHOTS=1 $(BIN)/pytest -q tests/ui

## lint: ruff (lint + format check) and mypy on core/ and sdk/
lint: $(DEV_STAMP)
	$(BIN)/ruff check src tests bench examples
	$(BIN)/ruff format --check src tests bench examples
	$(BIN)/mypy

## bench: the performance benchmarks; each prints its figures and target
bench: $(DEV_STAMP)
	$(BIN)/python bench/run.py

## chaos: the long crash harnesses: 1 000 task instances, 20 SIGKILLs of the scheduler, then of
##        workers; and two schedulers on PostgreSQL, one SIGKILLed 12 times over 1 800 instances
chaos: $(DEV_STAMP)
	MILLSTREAM_CHAOS_LONG=1 $(BIN)/pytest -s -q --timeout 1200 tests/integration/test_chaos.py tests/integration/test_chaos_ha.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
