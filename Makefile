# Two commands do everything on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
TEST_EXTRAS := dev,postgres,mysql,server,openlineage,celery,scrapy,dlt,notify
DEMO_EXTRAS := server
# The storage tests also run on the lowest SQLAlchemy pyproject.toml allows
# (make test-min), in a second, small venv: the floor it claims stays true.
MIN_VENV ?= .venv-min
SQLALCHEMY_FLOOR := $(shell sed -n 's/^ *"sqlalchemy>=\([0-9.]*\).*/\1/p' pyproject.toml)
MIN_TESTS ?= tests/ledger tests/migrations
# Races, loads, threads and clocks measure time, not SQLAlchemy (make test
# runs them): left out here to keep this second run short.
MIN_SKIP ?= --ignore=tests/ledger/test_cancel_means_stop.py \
	--ignore=tests/ledger/test_clock_skew.py --ignore=tests/ledger/test_async_cancellation.py \
	--ignore=tests/ledger/test_nothing_dropped.py --ignore=tests/ledger/test_bad_input.py \
	--ignore=tests/ledger/test_library_traps.py \
	-k "not (thousand_active_runs or never_loses_to_its_own_heartbeat or never_blocks_run_starts)"

.PHONY: demo test test-min lint typecheck pytest bench bench-quick clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.demo-installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e ".[$(DEMO_EXTRAS)]"
	touch $@

$(VENV)/.test-installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e ".[$(TEST_EXTRAS)]"
	touch $@ $(VENV)/.demo-installed

$(MIN_VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(MIN_VENV)
	$(MIN_VENV)/bin/python -m pip install --quiet "sqlalchemy==$(SQLALCHEMY_FLOOR)" \
		-e ".[postgres,mysql]" "pytest>=8" "pytest-timeout>=2.3" "hypothesis>=6.100"
	touch $@

demo: $(VENV)/.demo-installed
	$(BIN)/runtrack demo $(DEMO_ARGS)

lint: $(VENV)/.test-installed
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench

typecheck: $(VENV)/.test-installed
	$(BIN)/mypy

pytest: $(VENV)/.test-installed
	$(BIN)/pytest $(PYTEST_ARGS)

test: lint typecheck pytest

test-min: $(MIN_VENV)/.installed
	$(MIN_VENV)/bin/python -c 'import sqlalchemy as sa; v = sa.__version__; \
		assert v == "$(SQLALCHEMY_FLOOR)", f"SQLAlchemy {v}, not the floor $(SQLALCHEMY_FLOOR)"'
	$(MIN_VENV)/bin/pytest -q $(MIN_TESTS) $(MIN_SKIP) $(PYTEST_ARGS)

bench: $(VENV)/.test-installed
	$(BIN)/python -m bench $(BENCH_ARGS)

bench-quick: $(VENV)/.test-installed
	$(BIN)/python -m bench --quick $(BENCH_ARGS)

clean:
	rm -rf $(VENV) $(MIN_VENV) .mypy_cache .ruff_cache .pytest_cache
