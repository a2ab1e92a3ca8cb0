"""
Reading an EON Tuner state (``GET /api/{projectId}/optimize/{tunerCoordinatorJobId}/state``).

Is the run over, did it fail, which trial is best, and a compact JSON summary for XCom. The sensor (on a worker)
and the trigger (in the triggerer) both summarise with :func:`summarize`, and ``EONTunerStateSensor`` and
``EdgeImpulseSetTunerPrimaryOperator(trial_id="best")`` both choose with :func:`best_trial`, so a DAG that hands the
sensor's best trial to the operator adopts that very trial. No Airflow import here: DAG files, workers and the
triggerer all load it cheaply.

Enums are read permissively: Studio may add trial statuses, and an unknown one must never crash a wait.

The choice takes three parameters, named alike on the sensor, its trigger and the operator:

- ``metric``: what "best" means, one of
  - a short name: ``accuracy`` / ``loss`` (validation set), ``test_accuracy`` / ``test_loss`` (test set),
    ``latency`` / ``ram`` / ``rom`` (the trial's ``devicePerformance``: ms, bytes, bytes);
  - a path into a trial's ``metrics``: ``<split>.<name>`` or ``<split>.<variant>.<name>``, e.g. ``test.accuracy``,
    ``validation.loss``, ``validation.int8.accuracy`` (``metrics.`` in front is allowed);
  - any other dotted path from the trial's root, e.g. ``devicePerformance.latency``.
- ``metric_mode``: ``max`` or ``min``; by default the metric's natural direction (by the path's last part:
  ``max`` for accuracies, ``min`` for loss, latency and sizes); required for any other metric.
- ``model_variant``: ``float32`` or ``int8`` (or ``akida``), whose figures count when the path names no variant;
  by default the run's ``config.optimizationPrecision``, and without one ``float32``, else ``int8``, else the first
  variant a trial has.

Only completed trials take part; the first one wins a tie; a value that is missing, not a number, or not finite
(NaN, infinity) never wins. Studio's ``TunerTrial.metrics`` is ``{test|train|validation: {float32|int8:
KerasModelMetadataMetrics}}`` (scalars ``loss`` and ``accuracy``, plus confusion matrix, report and on-device
performance), with ``devicePerformance {latency, ram, rom}`` next to it.
"""

from __future__ import annotations

import math
from typing import Any

from airflow_provider_edgeimpulse.studio import MODEL_VARIANTS

TRIAL_STATUSES = ("pending", "running", "completed", "failed")
OTHER = "other"
MODES = ("max", "min")
SPLITS = ("validation", "test", "train")
KNOWN_VARIANTS = MODEL_VARIANTS

METRIC_ALIASES: dict[str, str] = {
    "accuracy": "validation.accuracy",
    "loss": "validation.loss",
    "test_accuracy": "test.accuracy",
    "test_loss": "test.loss",
    "latency": "devicePerformance.latency",
    "ram": "devicePerformance.ram",
    "rom": "devicePerformance.rom",
}
# The natural direction of a metric, by the last part of its path; anything else needs an explicit mode.
NATURAL_MODES: dict[str, str] = {
    "accuracy": "max",
    "loss": "min",
    "latency": "min",
    "ram": "min",
    "rom": "min",
    "ramRequired": "min",
    "romRequired": "min",
    "arenaSize": "min",
    "modelSize": "min",
}
# Numbers in a metrics block that are not measurements of the model.
_NOT_METRICS = frozenset({"profilingJobId"})


# -- reading a state --------------------------------------------------------------------------------------------


def is_running(state: dict[str, Any]) -> bool:
    """Only an explicit ``tunerJobIsRunning: false`` means over; a missing or odd value keeps waiting."""
    return state.get("tunerJobIsRunning") is not False


def trials_of(state: dict[str, Any]) -> list[dict[str, Any]]:
    trials = state.get("trials")
    return [t for t in trials if isinstance(t, dict)] if isinstance(trials, list) else []


def status_of(trial: dict[str, Any]) -> str:
    """The trial's status if it is one we know, else ``"other"``."""
    status = trial.get("status")
    return status if status in TRIAL_STATUSES else OTHER


def trial_counts(state: dict[str, Any]) -> dict[str, int]:
    counts = dict.fromkeys((*TRIAL_STATUSES, OTHER), 0)
    for trial in trials_of(state):
        counts[status_of(trial)] += 1
    return counts


def run_failure(state: dict[str, Any]) -> str | None:
    """
    Why a finished run counts as failed, or ``None``.

    Failed: it ended with ``jobError``, or not one trial completed (every trial failed, or the run was stopped
    before any finished): either way there is no model to adopt.
    """
    job_error = state.get("jobError")
    if job_error:
        return f"the EON Tuner run ended with an error: {job_error}"
    counts = trial_counts(state)
    total = sum(counts.values())
    if counts["completed"]:
        return None
    if total and counts["failed"] == total:
        return f"every one of the {total} EON Tuner trials failed"
    return f"no EON Tuner trial completed ({progress_line(state)})"


def progress_line(state: dict[str, Any]) -> str:
    return _describe(trial_counts(state), other_statuses(state))


def other_statuses(state: dict[str, Any], limit: int = 5) -> list[str]:
    """The unknown trial statuses of a state, each once, as ``repr`` text (a few, cut short: they are Studio's)."""
    seen: dict[str, None] = {}
    for trial in trials_of(state):
        if status_of(trial) == OTHER:
            seen.setdefault(repr(trial.get("status"))[:40], None)
    return list(seen)[:limit]


def _describe(counts: dict[str, int], others: list[str] | None = None) -> str:
    shown = [f"{counts[s]} {s}" for s in TRIAL_STATUSES]
    if counts[OTHER]:
        # Name the statuses: "in other states" alone leaves the reader guessing what Studio said.
        named = f" ({', '.join(others)})" if others else ""
        shown.append(f"{counts[OTHER]} in other states{named}")
    return ", ".join(shown)


# -- metrics ----------------------------------------------------------------------------------------------------


def check_metric(metric: Any) -> str:
    """The metric, stripped; a ``ValueError`` naming the choices when it cannot be one."""
    if not isinstance(metric, str) or not metric.strip():
        raise ValueError(f"metric must be a non-empty string, got {metric!r}")
    metric = metric.strip()
    if any(not part.strip() for part in metric.split(".")):
        raise ValueError(f"metric {metric!r} has an empty part")
    if "." not in metric and metric not in METRIC_ALIASES:
        # A bare word that is no alias is almost always a typo: say so before a search of hours, not after.
        raise ValueError(
            f"metric {metric!r} is unknown; use one of {sorted(METRIC_ALIASES)} or a path such as "
            "'test.accuracy', 'validation.int8.loss' or 'devicePerformance.latency'"
        )
    return metric


def resolve_mode(metric: str, mode: str | None) -> str:
    """``max`` or ``min``: the one given, else the metric's natural direction."""
    if mode is not None:
        normalized = str(mode).strip().lower()
        if normalized not in MODES:
            raise ValueError(f"metric_mode must be 'max' or 'min', got {mode!r}")
        return normalized
    leaf = METRIC_ALIASES.get(metric, metric).rsplit(".", 1)[-1]
    natural = NATURAL_MODES.get(leaf)
    if natural is None:
        raise ValueError(f"metric_mode ('max' or 'min') is required for the metric {metric!r}")
    return natural


def check_variant(variant: Any) -> str | None:
    """The model variant, stripped, or ``None`` for the run's own; a ``ValueError`` naming the choices."""
    if variant is None:
        return None
    normalized = variant.strip() if isinstance(variant, str) else variant
    if normalized not in KNOWN_VARIANTS:
        raise ValueError(f"model_variant must be one of {list(KNOWN_VARIANTS)} or None, got {variant!r}")
    return str(normalized)


def check_choice(metric: Any, metric_mode: Any, model_variant: Any = None) -> tuple[str, str, str | None]:
    """``(metric, mode, variant)`` checked and resolved: what every caller of :func:`best_trial` validates first."""
    metric = check_metric(metric)
    return metric, resolve_mode(metric, metric_mode), check_variant(model_variant)


def metric_value(trial: dict[str, Any], metric: str, *, variant: str | None = None) -> float | None:
    """One trial's value of ``metric`` (see the module docstring), or ``None`` when it does not report it."""
    parts = METRIC_ALIASES.get(metric, metric).split(".")
    if parts[0] == "metrics" and len(parts) > 2 and parts[1] in SPLITS:
        parts = parts[1:]
    if parts[0] not in SPLITS:
        return _number(_walk(trial, parts))
    metrics = trial.get("metrics")
    by_variant = metrics.get(parts[0]) if isinstance(metrics, dict) else None
    if not isinstance(by_variant, dict) or len(parts) < 2:
        return None
    rest = parts[1:]
    if len(rest) > 1 and (rest[0] in KNOWN_VARIANTS or rest[0] in by_variant):
        chosen: Any = by_variant.get(rest[0])
        rest = rest[1:]
    elif variant is not None:
        chosen = by_variant.get(variant)
    else:
        chosen = next((by_variant[v] for v in ("float32", "int8") if v in by_variant), None)
        chosen = chosen if chosen is not None else next(iter(by_variant.values()), None)
    return _number(_walk(chosen, rest))


def run_variant(state: dict[str, Any]) -> str | None:
    """The model variant the run optimised for (``config.optimizationPrecision``), if it says."""
    config = state.get("config")
    precision = config.get("optimizationPrecision") if isinstance(config, dict) else None
    return precision if isinstance(precision, str) and precision else None


def best_trial(
    state: dict[str, Any], metric: str = "accuracy", mode: str | None = "max", *, variant: str | None = None
) -> tuple[str, float]:
    """
    The completed trial with the highest (``max``) or lowest (``min``) ``metric``, and its value.

    The choice the module docstring describes. ``variant`` picks the model variant whose figures count (by default
    the run's ``optimizationPrecision``). Raises ``ValueError`` saying why when there is no answer: a bad metric,
    mode or variant, no completed trial, or no completed trial reporting the metric (naming the variants that have
    figures when the chosen one has none).
    """
    metric, mode, variant = check_choice(metric, mode, variant)
    variant = variant or run_variant(state)
    trials = trials_of(state)
    completed = [t for t in trials if t.get("status") == "completed" and t.get("id") is not None]
    if not completed:
        raise ValueError(f"the EON Tuner run has no completed trial to choose from ({progress_line(state)})")
    scored = [(str(t["id"]), v) for t in completed if (v := metric_value(t, metric, variant=variant)) is not None]
    if not scored:
        raise ValueError(_unreported(completed, metric, variant))
    pick = max if mode == "max" else min
    return pick(scored, key=lambda item: item[1])


def _unreported(completed: list[dict[str, Any]], metric: str, variant: str | None) -> str:
    split = _split_of(metric)
    if variant is not None and split is not None:
        having = _variants_with_figures(completed, split)
        if variant not in having:
            name = METRIC_ALIASES.get(metric, metric).rsplit(".", 1)[-1]
            suggestion = f"; choose one with model_variant, or in the path, e.g. '{split}.{having[0]}.{name}'"
            return (
                f"no completed EON Tuner trial has {split} figures for model variant {variant!r}; "
                f"variants with {split} figures: {having or 'none'}{suggestion if having else ''}"
            )
    where = f" for model variant {variant!r}" if variant else ""
    available = sorted(_paths(compact_metrics(completed[0])))
    return (
        f"no completed EON Tuner trial reports the metric {metric!r}{where}; "
        f"the first completed trial reports: {available or 'nothing'}"
    )


def _split_of(metric: str) -> str | None:
    """The split a metric reads (``validation``, ``test``, ``train``), or ``None`` for a path from the root."""
    parts = METRIC_ALIASES.get(metric, metric).split(".")
    if parts[0] == "metrics" and len(parts) > 2:
        parts = parts[1:]
    return parts[0] if parts[0] in SPLITS else None


def _variants_with_figures(completed: list[dict[str, Any]], split: str) -> list[str]:
    """The model variants with at least one number in ``split`` in some completed trial, in a stable order."""
    found: dict[str, None] = {}
    for trial in completed:
        by_variant = compact_metrics(trial).get(split)
        for name in by_variant if isinstance(by_variant, dict) else ():
            found.setdefault(name, None)
    return sorted(found, key=lambda v: (KNOWN_VARIANTS.index(v) if v in KNOWN_VARIANTS else len(KNOWN_VARIANTS), v))


def compact_metrics(trial: dict[str, Any]) -> dict[str, Any]:
    """
    A trial's scalar metrics only: ``{split: {variant: {name: number}}, "devicePerformance": {name: number}}``.

    Confusion matrices, reports and per-device tables stay in Studio: XCom lives in the metadata database.
    """
    compact: dict[str, Any] = {}
    metrics = trial.get("metrics")
    if isinstance(metrics, dict):
        for split, by_variant in metrics.items():
            if not isinstance(by_variant, dict):
                continue
            for variant, entry in by_variant.items():
                numbers = _scalars(entry)
                if numbers:
                    compact.setdefault(str(split), {})[str(variant)] = numbers
    performance = _scalars(trial.get("devicePerformance"))
    if performance:
        compact["devicePerformance"] = performance
    return compact


# -- the summary ------------------------------------------------------------------------------------------------


def summarize(state: dict[str, Any], metric: str, mode: str | None, *, variant: str | None = None) -> dict[str, Any]:
    """
    The XCom of ``EONTunerStateSensor``: JSON-safe, compact, the same in every mode.

    ``{"tuner_coordinator_job_id", "tuner_job_id", "running", "run_status", "status_counts" (Studio's
    ``numCompletedTrials``...), "trial_counts" (``pending``, ``running``, ``completed``, ``failed``, ``other``),
    "metric", "mode", "model_variant", "trials": [{"id", "name", "status", "value", "metrics"}], "best_trial":
    {"trial_id", "value", "metric", "mode"} | None, "best_trial_error", "job_error"}``
    """
    metric, mode, variant = check_choice(metric, mode, variant)
    variant = variant or run_variant(state)
    raw_status = state.get("status")
    status_block: dict[str, Any] = raw_status if isinstance(raw_status, dict) else {}
    best: dict[str, Any] | None = None
    best_error: str | None = None
    try:
        trial_id, value = best_trial(state, metric, mode, variant=variant)
        best = {"trial_id": trial_id, "value": value, "metric": metric, "mode": mode}
    except ValueError as err:
        best_error = str(err)
    job_error = state.get("jobError")
    return {
        "tuner_coordinator_job_id": _int_or_none(state.get("tunerCoordinatorJobId")),
        "tuner_job_id": _int_or_none(state.get("tunerJobId")),
        "running": is_running(state),
        "run_status": _text(status_block.get("status")),
        "status_counts": {str(k): int(v) for k, v in status_block.items() if _number(v) is not None},
        "trial_counts": trial_counts(state),
        "metric": metric,
        "mode": mode,
        "model_variant": variant,
        "trials": [
            {
                "id": _text(t.get("id")),
                "name": _text(t.get("name")),
                "status": _text(t.get("status")),
                "value": metric_value(t, metric, variant=variant),
                "metrics": compact_metrics(t),
            }
            for t in trials_of(state)
        ],
        "best_trial": best,
        "best_trial_error": best_error,
        "job_error": _text(job_error) if job_error else None,
    }


# -- helpers ----------------------------------------------------------------------------------------------------


def _walk(value: Any, parts: list[str]) -> Any:
    for part in parts:
        if isinstance(value, dict):
            value = value.get(part)
        elif isinstance(value, list) and part.isdigit() and int(part) < len(value):
            value = value[int(part)]
        else:
            return None
    return value


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def _scalars(entry: Any) -> dict[str, float]:
    if not isinstance(entry, dict):
        return {}
    return {str(k): n for k, v in entry.items() if k not in _NOT_METRICS and (n := _number(v)) is not None}


def _paths(compact: dict[str, Any], prefix: str = "") -> list[str]:
    found: list[str] = []
    for key, value in compact.items():
        path = f"{prefix}{key}"
        found.extend(_paths(value, f"{path}.") if isinstance(value, dict) else [path])
    return found


def _int_or_none(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _text(value: Any) -> str | None:
    return None if value is None else str(value)
