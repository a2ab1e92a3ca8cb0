"""
Every row of ``docs/bad-inputs.md`` as a test: a clear error, no secret, no needless remote work, no storm, no hang.

The table and the cases are one list: ``test_the_table_and_the_cases_are_the_same_rows`` fails when a row has
no case or a case no row.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from tests.bad_inputs.cases import ANY, CASE_BOUND_S, CASES, LOCAL, NO_JOB, Env

DOC = Path(__file__).resolve().parents[2] / "docs" / "bad-inputs.md"
_ROW = re.compile(r"^\|\s*`([a-z0-9-]+)`\s*\|")
# Whatever a case makes the provider log stays well below the size of the huge inputs (10 MB lines, 3 MB texts).
MAX_LOG_CHARS = 256 * 1024


def doc_row_ids() -> list[str]:
    return [m.group(1) for line in DOC.read_text(encoding="utf-8").splitlines() if (m := _ROW.match(line))]


def test_the_table_and_the_cases_are_the_same_rows() -> None:
    ids = doc_row_ids()
    assert len(ids) == len(set(ids)), "a row id appears twice in the table"
    assert len(ids) >= 45
    assert set(ids) == set(CASES), {
        "rows without a case": sorted(set(ids) - set(CASES)),
        "cases without a row": sorted(set(CASES) - set(ids)),
    }


def run_bounded(call: Any, seconds: float) -> tuple[Any, BaseException | None, float]:
    """Run ``call`` on a daemon thread and wait at most ``seconds``; a call still running then is a hang."""
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["result"] = call()
        except BaseException as exc:  # the case's answer, whatever it is
            box["error"] = exc

    thread = threading.Thread(target=target, name="bad-input-call", daemon=True)
    began = time.monotonic()
    thread.start()
    thread.join(seconds)
    elapsed = time.monotonic() - began
    if thread.is_alive():
        pytest.fail(f"the call was still running after {seconds:g} s: it hangs")
    return box.get("result"), box.get("error"), elapsed


def job_ids(env: Env) -> set[int]:
    return {int(job["id"]) for job in env.em.jobs()}


@pytest.mark.parametrize(
    "case_id",
    [
        pytest.param(case_id, marks=pytest.mark.off_spec(case.off_spec)) if case.off_spec else case_id
        for case_id, case in CASES.items()
    ],
)
def test_bad_input(case_id: str, env: Env, caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]):
    case = CASES[case_id]
    call = case.setup(env)
    requests_before = env.em.requests()["total"]
    jobs_before = job_ids(env)
    caplog.set_level(logging.DEBUG)
    caplog.clear()
    capfd.readouterr()

    result, error, elapsed = run_bounded(call, CASE_BOUND_S)

    captured = capfd.readouterr()
    logs = "\n".join([*(r.getMessage() for r in caplog.records), captured.out, captured.err])
    if case.raises is not None:
        assert error is not None, f"expected {case.raises.__name__}, the call returned {result!r:.300}"
        assert type(error) is case.raises, f"expected {case.raises.__name__}, got {type(error).__name__}: {error}"
        message = str(error)
    else:
        assert error is None, f"expected no exception, got {type(error).__name__}: {str(error)[:2000]}"
        if case.event is not None:
            assert isinstance(result, dict) and result.get("status") == case.event, f"event {result!r:.2000}"
        message = case.result(result) if case.result is not None else str(result.get("message"))

    # The message names the problem and the offending value, within a bounded size.
    for name in case.names:
        assert name in message, f"{name!r} not in the message: {message[:3000]!r}"
    assert len(message) <= case.max_message, f"a message of {len(message)} characters"
    # No secret, in the message or in anything logged meanwhile.
    for secret in env.secrets():
        assert secret not in message, "a secret is in the message"
        assert secret not in logs, "a secret is in the logs"
    assert len(logs) <= MAX_LOG_CHARS, f"{len(logs)} characters logged"
    # No remote work the input did not need, and no retry storm.
    made = env.em.requests()["total"] - requests_before
    assert case.remote in (LOCAL, NO_JOB, ANY)
    if case.remote == LOCAL:
        assert made == 0, f"{made} requests for an input that can be refused locally: {env.em.requests()}"
    assert made <= case.max_requests, f"{made} requests: {env.em.requests()['by_route']}"
    new_jobs = job_ids(env) - jobs_before
    assert len(new_jobs) <= (1 if case.starts_job else 0), f"jobs started: {new_jobs}"
    assert elapsed < CASE_BOUND_S


def test_the_capture_sees_what_the_provider_logs(env: Env, caplog: pytest.LogCaptureFixture, capfd) -> None:
    """The log checks above are only worth something if a log line written on the case's thread is caught."""
    from airflow_provider_edgeimpulse.operators.training import EdgeImpulseRetrainOperator
    from tests.operators.fakes import make_context

    env.em.configure(job_duration=0.05)
    caplog.set_level(logging.DEBUG)
    result, error, _ = run_bounded(lambda: EdgeImpulseRetrainOperator(task_id="t").execute(make_context()), 30)
    assert error is None and result["success"] is True
    captured = capfd.readouterr()
    logs = "\n".join([*(r.getMessage() for r in caplog.records), captured.out, captured.err])
    assert "Started Edge Impulse job" in logs
