# Two entry points for a newcomer: `make demo` and `make test`. Each builds its own .venv.
PYTHON ?= python3
VENV ?= .venv
AIRFLOW_VERSION ?= 3.3.2
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(AIRFLOW_VERSION)
# The second supported Airflow line: the unit tests and dag.test() runs also run on it (`make test-af2`).
AF2_VERSION ?= 2.11.2
AF2_VENV ?= .venv-af2
AF2_BIN := $(AF2_VENV)/bin
AF2_STAMP := $(AF2_VENV)/.installed-$(AF2_VERSION)
# Seconds one test may take on 2.11 before pytest-timeout fails it: a hang must not eat CI's 90 minutes.
AF2_TEST_TIMEOUT ?= 120
# The other Airflow 3 lines the end-to-end tests marked `versions` run on (`make test-versions`), one after the
# other, each from a venv cached in ~/.cache/airflow-provider-edgeimpulse/venvs (tests/e2e/versions.py).
AF3_VERSIONS ?= 3.1.8 3.2.2
# A real Airflow 2.11 stack (scheduler, triggerer, webserver) in `make test-versions`, not in `make e2e`.
AF2_E2E := tests/e2e/test_versions_af2.py

.PHONY: venv venv-af2 demo test lint typecheck unit e2e browser services test-af2 test-versions bench chaos clean

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
	$(BIN)/python -m pytest -q -m "not e2e"

# Debian's Chromium for the UI test (needs root; a no-op once installed; without it the UI test skips, and
# fails under CI=true). Never `playwright install`: this machine cannot download a browser.
browser:
	-bash scripts/e2e/install_browser.sh

# Debian's PostgreSQL and Redis for the production-shaped stack (needs root; a no-op once installed; without them
# its tests skip, and fail under CI=true). The stack starts its own throw-away servers on free ports.
services:
	-bash scripts/e2e/install_services.sh

# A real Airflow (scheduler, dag-processor, triggerer, api-server) + the emulator; logs in test-artifacts/e2e/.
# Also the production shape: PostgreSQL, Redis, two Celery workers, two triggerers, the provider from its wheel.
e2e: venv browser services
	$(BIN)/python -m pytest -q -m e2e tests/e2e --ignore=$(AF2_E2E)

venv-af2: $(AF2_STAMP)

# pytest-timeout only here, as a hang guard: a dag.test() run on 2.11 whose sensor never fires loops for its hour.
$(AF2_STAMP): pyproject.toml tests/e2e/airflow-pins/2.11.txt
	$(PYTHON) -m venv $(AF2_VENV)
	$(AF2_BIN)/python -m pip install --quiet --upgrade pip uv
	$(AF2_BIN)/uv pip install --quiet --python $(AF2_BIN)/python "apache-airflow==$(AF2_VERSION)" \
		"pytest-timeout==2.4.0" -r tests/e2e/airflow-pins/2.11.txt -e ".[test,bench]"
	touch $@

# Unit tests and dag.test() runs on Airflow 2.11; tests/conftest.py gives it its own AIRFLOW_HOME in $(AF2_VENV)
# (2.x cannot share 3.x's database) and the executor 2.x needs on SQLite. No cache: the 3.x runs own .pytest_cache.
test-af2: venv-af2
	$(AF2_BIN)/python -m pytest -q -m "not e2e" -p no:cacheprovider --timeout=$(AF2_TEST_TIMEOUT)

# A real stack of each version in AF3_VERSIONS and of AF2_VERSION: the provider from its wheel, evidence in
# test-artifacts/e2e-airflow-*.
# Every version runs even when one fails; the target fails if any did.
test-versions: venv
	@status=0; for version in $(AF3_VERSIONS); do \
		echo "== end-to-end on Airflow $$version"; \
		EI_E2E_AIRFLOW_VERSION=$$version EI_E2E_ARTIFACTS=$(CURDIR)/test-artifacts/e2e-airflow-$$version \
			$(BIN)/python -m pytest -q -m "e2e and versions" -p no:cacheprovider tests/e2e --ignore=$(AF2_E2E) \
			|| status=1; \
	done; \
	echo "== end-to-end on Airflow $(AF2_VERSION)"; \
	EI_AF2_VERSION=$(AF2_VERSION) EI_E2E_ARTIFACTS=$(CURDIR)/test-artifacts/e2e-airflow-$(AF2_VERSION) \
		$(BIN)/python -m pytest -q -m e2e -p no:cacheprovider $(AF2_E2E) || status=1; \
	exit $$status

test: lint typecheck unit e2e test-af2 test-versions

# The long fault-injection run (the test suite runs a bounded one); EI_CHAOS_SEED picks another seed.
chaos: venv
	EI_CHAOS_WAITS=$${EI_CHAOS_WAITS:-3000} $(BIN)/python -m pytest -q -s -p no:logging tests/reliability/test_chaos.py

# Every bench/*.py benchmark; bench/_*.py are their shared helpers, not benchmarks. task_latency.py starts a
# production-shaped Airflow (PostgreSQL, Redis, Celery) and takes about ten minutes.
bench: venv services
	@for script in bench/[!_]*.py; do echo "== $$script"; $(BIN)/python $$script || exit 1; done

clean:
	rm -rf $(VENV) $(AF2_VENV) .airflow-home .pytest_cache .mypy_cache .ruff_cache test-artifacts
