# Two commands do all set-up on a fresh machine: `make run` and `make test`.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEV_STAMP := $(VENV)/.installed-dev
export MILLSTREAM_HOME ?= $(HOME)/millstream

.PHONY: run test lint bench chaos clean

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

## test: install dev extras, run the whole suite
test: $(DEV_STAMP)
	$(BIN)/pytest

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
