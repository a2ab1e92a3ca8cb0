"""
Reading an EON Tuner state (``optimize/{coordinatorJobId}/state``): is the run over, did it fail, which trial won.

Enums are read permissively: Studio may add statuses, and an unknown one must never crash a sensor.
"""

from __future__ import annotations

from typing import Any

TRIAL_STATUSES = ("pending", "running", "completed", "failed")


def is_running(state: dict[str, Any]) -> bool:
    """``tunerJobIsRunning == false`` means finished; anything but an explicit ``false`` counts as running."""
    return state.get("tunerJobIsRunning") is not False


def run_failure(state: dict[str, Any]) -> str | None:
    """Why a finished run counts as failed (``jobError``, or every trial failed), or ``None``."""
    if state.get("jobError"):
        return f"the EON Tuner run ended with an error: {state['jobError']}"
    trials = _trials(state)
    if trials and all(t.get("status") == "failed" for t in trials):
        return f"every one of the {len(trials)} EON Tuner trials failed"
    return None


def summarize(state: dict[str, Any], metric: str, mode: str, variant: str | None = None) -> dict[str, Any]:
    """A compact, JSON-safe summary for XCom: counts, trials with their metrics, and the best trial."""
    from airflow_provider_edgeimpulse.operators.tuner import select_trial, trial_metric

    trials = _trials(state)
    counts = dict.fromkeys((*TRIAL_STATUSES, "other"), 0)
    for trial in trials:
        status = trial.get("status")
        counts[status if status in TRIAL_STATUSES else "other"] += 1
    raw_status = state.get("status")
    status_block: dict[str, Any] = raw_status if isinstance(raw_status, dict) else {}
    best: dict[str, Any] | None
    try:
        trial_id, value = select_trial(state, metric, mode, variant)
        best = {"trial_id": trial_id, "metric": metric, "mode": mode, "value": value}
    except ValueError as err:
        best = None
        best_error: str | None = str(err)
    else:
        best_error = None
    return {
        "tuner_coordinator_job_id": state.get("tunerCoordinatorJobId"),
        "running": is_running(state),
        "status": str(status_block.get("status")) if status_block.get("status") is not None else None,
        "trial_counts": counts,
        "trials": [
            {
                "id": t.get("id"),
                "name": t.get("name"),
                "status": t.get("status"),
                metric: trial_metric(t, metric, variant),
            }
            for t in trials
        ],
        "best_trial": best,
        "best_trial_error": best_error,
        "job_error": state.get("jobError"),
    }


def progress_line(state: dict[str, Any]) -> str:
    counts = {s: 0 for s in TRIAL_STATUSES}
    for trial in _trials(state):
        if trial.get("status") in counts:
            counts[trial["status"]] += 1
    return ", ".join(f"{n} {s}" for s, n in counts.items())


def _trials(state: dict[str, Any]) -> list[dict[str, Any]]:
    return [t for t in state.get("trials") or [] if isinstance(t, dict)]
