"""A job found finished without waiting reads exactly as a wait on it would have ended: one outcome shape."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from airflow_provider_edgeimpulse.hooks.edgeimpulse import EdgeImpulseHook
from airflow_provider_edgeimpulse.jobs.blocking import finished_job_outcome, wait_for_job_blocking


@pytest.mark.parametrize("succeeds", [True, False])
def test_a_finished_job_reads_as_its_wait_ended(edgeimpulse_emulator: Any, jobs: Any, succeeds: bool) -> None:
    hook = EdgeImpulseHook()
    job_id = jobs.start()
    edgeimpulse_emulator.finish_job(job_id, succeeds)
    waited = wait_for_job_blocking(hook.credentials, hook.project_id, job_id, timeout=30)
    found = finished_job_outcome(
        hook, job_id, hook.get_job_status(job_id), log_tail=50, log=logging.getLogger(__name__)
    )
    assert found == waited
    assert found["status"] == ("success" if succeeds else "failure")
    assert found["success"] is succeeds


def test_an_unreadable_log_leaves_the_outcome_standing(edgeimpulse_emulator: Any, jobs: Any, caplog: Any) -> None:
    hook = EdgeImpulseHook()
    job_id = jobs.start()
    edgeimpulse_emulator.finish_job(job_id, False)
    status = hook.get_job_status(job_id)
    edgeimpulse_emulator.fault(status=403, count=5, path=f"/jobs/{job_id}/stdout")
    found = finished_job_outcome(hook, job_id, status, log_tail=50, log=logging.getLogger(__name__))
    assert found["success"] is False and found["log_tail"] == []
    assert f"Could not read the log of Edge Impulse job {job_id}" in caplog.text
