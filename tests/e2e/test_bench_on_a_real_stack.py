"""
The benchmarks that start a real Airflow with PostgreSQL and Redis run end to end with tiny sizes (``--quick``)
and end with their figures, like the others in tests/test_bench_smoke.py. A smoke test: nothing looks at the numbers.
"""

from __future__ import annotations

import pytest

from tests.e2e.services import ensure_services
from tests.test_bench_smoke import BENCH, ON_A_REAL_STACK, check_figures, run_quick

pytestmark = pytest.mark.e2e


@pytest.mark.parametrize("name", sorted(ON_A_REAL_STACK))
def test_quick_run_ends_with_its_figures(name: str) -> None:
    ensure_services()
    check_figures(name, run_quick(BENCH / name))
