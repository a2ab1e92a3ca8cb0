# Two entry points for a newcomer: `make demo` and `make test`. Each builds its own .venv.
PYTHON ?= python3
VENV ?= .venv
AIRFLOW_VERSION ?= 3.3.2
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(AIRFLOW_VERSION)

.PHONY: venv demo test lint typecheck unit bench chaos clean

venv: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip uv
	$(BIN)/uv pip install --quiet --python $(BIN)/python "apache-airflow==$(AIRFLOW_VERSION)" -e ".[test,bench]"
	touch $@

demo: venv
	$(BIN)/python scripts/demo.py

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: venv
	$(BIN)/mypy

unit: venv
	$(BIN)/python -m pytest -q

test: lint typecheck unit

# The long fault-injection run (the test suite runs a bounded one); EI_CHAOS_SEED picks another seed.
chaos: venv
	EI_CHAOS_WAITS=$${EI_CHAOS_WAITS:-3000} $(BIN)/python -m pytest -q -s -p no:logging tests/reliability/test_chaos.py

# Every bench/*.py benchmark; bench/_*.py are their shared helpers, not benchmarks.
bench: venv
	@for script in bench/[!_]*.py; do echo "== $$script"; $(BIN)/python $$script || exit 1; done

clean:
	rm -rf $(VENV) .airflow-home .pytest_cache .mypy_cache .ruff_cache
