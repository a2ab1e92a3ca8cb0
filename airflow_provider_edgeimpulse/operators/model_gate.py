"""
A deployment gate: the trained model must meet every limit the DAG author sets, or the task fails for good.

A separate operator rather than more options on model testing: testing runs a job (and may defer), the gate
only reads what Studio already computed (model testing per label and per variant, the Keras block's on-device
profile) and judges it. So the gate can follow model testing, a version or a tuner run alike, never starts a
job, never defers, and its verdict is one structured result a report task can show.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from airflow.providers.common.compat.sdk import AirflowFailException

from airflow_provider_edgeimpulse import validation as _params
from airflow_provider_edgeimpulse.operators._base import EdgeImpulseBaseOperator
from airflow_provider_edgeimpulse.operators.model_testing import summarize_model_testing
from airflow_provider_edgeimpulse.studio import MODEL_VARIANTS, studio_versions_url

if TYPE_CHECKING:
    from airflow.providers.common.compat.sdk import Context

    from airflow_provider_edgeimpulse.hooks.edgeimpulse import EdgeImpulseHook

VERDICT_XCOM_KEY = "model_gate"
# Studio's on-device memory figures per inference engine (``onDevicePerformance[].<engine>``).
ENGINES = ("eon", "tflite", "eon_ram_optimized")
# Kinds of figure a baseline may hold, as the gate reports them under ``figures``.
BASELINE_KEYS = ("accuracy", "label_accuracy", "variant_accuracy")


class EdgeImpulseModelGateError(AirflowFailException):
    """The model missed at least one of the gate's limits; retrying cannot change the figures."""


def _figure(value: Any) -> float | None:
    """A number read from the wire, or None when Studio sent none (a check on it then fails)."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return None
    return float(value)


def label_f1(confusion: dict[str, Any]) -> dict[str, float | None]:
    """Per-label F1 from the model-testing confusion matrix ``{actual: {predicted: count}}``."""
    counts = {
        a: {p: _figure(n) or 0.0 for p, n in row.items()} for a, row in confusion.items() if isinstance(row, dict)
    }
    scores: dict[str, float | None] = {}
    for label, row in counts.items():
        hits = row.get(label, 0.0)
        missed = sum(row.values()) - hits
        false_alarms = sum(other.get(label, 0.0) for actual, other in counts.items() if actual != label)
        denominator = 2 * hits + missed + false_alarms
        scores[label] = round(2 * hits / denominator, 6) if denominator else None
    return scores


def _given_limits(name: str, value: Any) -> dict[str, float] | float | None:
    """One limit (a number) or one per name (a dict, or its JSON text), each a fraction."""
    if value is None:
        return None
    if isinstance(value, dict) or (isinstance(value, str) and value.strip().startswith("{")):
        given = _params.optional_dict(name, value) or {}
        return {key: _fraction(f"{name}[{key}]", limit) for key, limit in given.items()}
    return _fraction(name, value)


def _per_name_limits(name: str, value: Any, known: Sequence[str], what: str) -> dict[str, float]:
    """A limit for every name or for some; a name Studio does not report is an error listing those it does."""
    given = _given_limits(name, value)
    if not isinstance(given, dict):
        return {} if given is None else dict.fromkeys(known, given)
    unknown = sorted(set(given) - set(known))
    if unknown:
        raise ValueError(f"{name}: unknown {what}(s) {unknown}; the project has {list(known)}")
    return given


def _fraction(name: str, value: Any) -> float:
    number = _params.optional_fraction(name, value)
    if number is None:
        raise ValueError(f"{name} must be a fraction between 0 and 1, got None")
    return number


def _version_shown(baseline: dict[str, Any] | None) -> str:
    """`` (version N, id M)`` of the version the gate compared with, when it compared with one."""
    if not baseline:
        return ""
    return f" (version {baseline.get('version')}, id {baseline.get('version_id')})"


def _pick(items: list[dict[str, Any]], wanted: str, keys: Sequence[str], name: str) -> dict[str, Any]:
    for item in items:
        if any(item.get(key) == wanted for key in keys):
            return item
    present = [" / ".join(str(item.get(key)) for key in keys) for item in items]
    raise ValueError(f"{name}: {wanted!r} is not among what Studio reports: {present}")


class EdgeImpulseModelGateOperator(EdgeImpulseBaseOperator):
    """
    Fail the task, without retries, unless the project's trained model meets every limit set here.

    It reads what Studio has computed (run :class:`EdgeImpulseModelTestingOperator` first for the accuracy
    checks): model testing (``classify/all/result``), accuracy per model variant (``classify/all/metrics``) and
    the Keras block's on-device profile (``training/keras/{learnId}/metadata``). Only the figures a check needs
    are fetched. Every limit is templated; a dict may also arrive as JSON text. Accuracies and F1 scores are
    fractions between 0 and 1.

    :param min_accuracy: the overall model-testing accuracy must be at least this.
    :param min_label_accuracy: per label: one number for every label, or ``{label: limit}``.
    :param min_label_f1: per label F1 (from the confusion matrix): one number, or ``{label: limit}``.
    :param min_variant_accuracy: ``{variant: limit}`` for ``int8`` / ``float32`` / ``akida``, or one number
        for every variant Studio reports.
    :param device: the target device for the budget checks, as Studio names it in the Keras block's
        performance table: its ``mcu`` id (``cortex-m4f-80mhz``) or its display name.
    :param device_variant: the model variant you deploy (``int8`` when omitted).
    :param engine: whose memory figures count: ``eon`` (default), ``tflite`` or ``eon_ram_optimized``.
    :param max_latency_ms: on-device inference time limit, in milliseconds.
    :param max_ram_bytes: on-device RAM limit, in bytes.
    :param max_rom_bytes: on-device ROM (flash) limit, in bytes.
    :param learn_id: the Keras learn block; the impulse's first Keras block when omitted.
    :param baseline: figures the model must not fall below by more than ``max_drop``: the ``figures`` of an
        earlier verdict of this operator, or ``{"accuracy": .., "label_accuracy": {label: ..},
        "variant_accuracy": {variant: ..}}`` with any of the three.
    :param baseline_version: compare with a project version instead: ``"last"`` (the newest version; with none
        yet, nothing is compared and the log says so) or a version id. A version records the overall test
        accuracy only (``testAccuracy``, read as a percentage when above 1); make versions with model testing.
        Not together with ``baseline``.
    :param max_drop: how much each baseline figure may drop (0 when omitted).
    :param impulse_id: the impulse whose model testing counts; the project's default when omitted.

    Common parameters: see :class:`EdgeImpulseBaseOperator`.

    :return: the verdict ``{"passed", "project_id", "checks": [{"name", "figure", "limit", "passed"}],
        "failed": [names], "figures": {...}}``, also pushed under the XCom key ``model_gate`` before the task
        fails, so a report task (``trigger_rule="all_done"``) can show it.
    """

    template_fields: Sequence[str] = (
        "project_id",
        "impulse_id",
        "learn_id",
        "min_accuracy",
        "min_label_accuracy",
        "min_label_f1",
        "min_variant_accuracy",
        "device",
        "device_variant",
        "engine",
        "max_latency_ms",
        "max_ram_bytes",
        "max_rom_bytes",
        "baseline",
        "baseline_version",
        "max_drop",
    )
    template_fields_renderers = {"baseline": "json"}

    def __init__(
        self,
        *,
        min_accuracy: float | str | None = None,
        min_label_accuracy: float | str | dict[str, float] | None = None,
        min_label_f1: float | str | dict[str, float] | None = None,
        min_variant_accuracy: float | str | dict[str, float] | None = None,
        device: str | None = None,
        device_variant: str | None = None,
        engine: str | None = None,
        max_latency_ms: float | str | None = None,
        max_ram_bytes: int | str | None = None,
        max_rom_bytes: int | str | None = None,
        learn_id: int | str | None = None,
        baseline: dict[str, Any] | str | None = None,
        baseline_version: int | str | None = None,
        max_drop: float | str | None = None,
        impulse_id: int | str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.min_accuracy = min_accuracy
        self.min_label_accuracy = min_label_accuracy
        self.min_label_f1 = min_label_f1
        self.min_variant_accuracy = min_variant_accuracy
        self.device = device
        self.device_variant = device_variant
        self.engine = engine
        self.max_latency_ms = max_latency_ms
        self.max_ram_bytes = max_ram_bytes
        self.max_rom_bytes = max_rom_bytes
        self.learn_id = learn_id
        self.baseline = baseline
        self.baseline_version = baseline_version
        self.max_drop = max_drop
        self.impulse_id = impulse_id

    def execute(self, context: Context) -> dict[str, Any]:
        self._check_inputs()
        judge = _Judge(self.hook, _params.optional_int("impulse_id", self.impulse_id, minimum=1))
        self._testing_checks(judge)
        self._variant_checks(judge)
        self._device_checks(judge)
        self._baseline_checks(judge)
        verdict = judge.verdict()
        context["ti"].xcom_push(key=VERDICT_XCOM_KEY, value=verdict)
        for check in verdict["checks"]:
            outcome = "PASS" if check["passed"] else "FAIL"
            self.log.info("%s %s: %s (limit %s)", outcome, check["name"], check["figure"], check["limit"])
        if not verdict["passed"]:
            self.log.error(
                "Model gate failed: %s. Nothing after this gate runs, so the last good version and deployment stay "
                "as they are. The project itself now holds the failed model: to roll back, restore the last good "
                "version%s from Studio's Versions page %s (the version's menu, Restore; Studio restores into a new, "
                "empty project: POST /api/{newProjectId}/jobs/restore with this project's id and the version's id), "
                "or retrain with the settings that made it.",
                ", ".join(verdict["failed"]),
                _version_shown(judge.baseline),
                studio_versions_url(self.hook.studio_url, self.hook.project_id),
            )
            raise EdgeImpulseModelGateError(
                f"Model gate failed for project {verdict['project_id']}: "
                + "; ".join(
                    f"{c['name']} {c['figure']} vs limit {c['limit']}" for c in verdict["checks"] if not c["passed"]
                )
            )
        self.log.info("Model gate passed: %d checks", len(verdict["checks"]))
        return verdict

    # -- inputs ------------------------------------------------------------------------------------------------

    def _budget(self) -> dict[str, float]:
        limits = {
            "latency_ms": _params.optional_number("max_latency_ms", self.max_latency_ms, minimum=0),
            "ram_bytes": _params.optional_number("max_ram_bytes", self.max_ram_bytes, minimum=0),
            "rom_bytes": _params.optional_number("max_rom_bytes", self.max_rom_bytes, minimum=0),
        }
        return {name: limit for name, limit in limits.items() if limit is not None}

    def _baseline(self) -> dict[str, Any]:
        baseline = _params.optional_dict("baseline", self.baseline) or {}
        unknown = sorted(set(baseline) - set(BASELINE_KEYS))
        if unknown:
            raise ValueError(f"baseline: unknown key(s) {unknown}; expected some of {list(BASELINE_KEYS)}")
        # An earlier verdict's figure that Studio did not report (None) has nothing to compare with.
        checked: dict[str, Any] = {}
        if baseline.get("accuracy") is not None:
            checked["accuracy"] = _fraction("baseline.accuracy", baseline["accuracy"])
        for key in BASELINE_KEYS[1:]:
            if key in baseline:
                per_name = _params.optional_dict(f"baseline.{key}", baseline[key]) or {}
                checked[key] = _given_limits(f"baseline.{key}", {k: v for k, v in per_name.items() if v is not None})
        return checked

    def _baseline_version(self) -> int | str | None:
        value = self.baseline_version
        if value is None or (isinstance(value, str) and value.strip() in ("", "None")):
            return None
        if isinstance(value, str) and value.strip().lower() == "last":
            return "last"
        try:
            return _params.required_int("baseline_version", value, minimum=1)
        except ValueError:
            raise ValueError(f"baseline_version must be 'last' or a version id, got {_params.shown(value)}") from None

    def _version_baseline(self, judge: _Judge) -> dict[str, Any]:
        """``{"accuracy"}`` of the version to compare with, or ``{}`` when ``"last"`` finds no version yet."""
        which = self._baseline_version()
        if which is None:
            return {}
        if which == "last":
            versions = [v for v in judge.hook.list_versions()["versions"] if isinstance(v.get("version"), int)]
            if not versions:
                self.log.warning("baseline_version='last': the project has no version yet, so nothing to compare with")
                return {}
            version = max(versions, key=lambda v: v["version"])
        else:
            version = judge.hook.get_version(int(which))
        accuracy = _figure(version.get("testAccuracy"))
        if accuracy is None:
            raise ValueError(
                f"baseline_version: version {version.get('version')} (id {version.get('id')}) records no test "
                "accuracy; make versions with model testing (run_model_testing_while_versioning) or pass baseline"
            )
        accuracy = round(accuracy / 100 if accuracy > 1 else accuracy, 6)
        judge.baseline = {"version_id": version.get("id"), "version": version.get("version"), "accuracy": accuracy}
        return {"accuracy": accuracy}

    def _check_inputs(self) -> None:
        """Everything that needs no answer from Studio, checked before the first request."""
        _params.optional_fraction("min_accuracy", self.min_accuracy)
        _given_limits("min_label_accuracy", self.min_label_accuracy)
        _given_limits("min_label_f1", self.min_label_f1)
        _given_limits("min_variant_accuracy", self.min_variant_accuracy)
        _params.optional_fraction("max_drop", self.max_drop)
        _params.optional_int("learn_id", self.learn_id, minimum=1)
        _params.optional_str("device_variant", self.device_variant, choices=MODEL_VARIANTS)
        _params.optional_str("engine", self.engine, choices=ENGINES)
        device = _params.optional_str("device", self.device)
        if self._budget() and not (device or "").strip():
            raise ValueError("device: name the target device for max_latency_ms / max_ram_bytes / max_rom_bytes")
        if device and not self._budget():
            raise ValueError("device is set but no budget: set max_latency_ms, max_ram_bytes or max_rom_bytes")
        if self._baseline() and self._baseline_version() is not None:
            raise ValueError("set baseline or baseline_version, not both")
        if self._baseline() and self.max_drop is None:
            self.log.info("baseline without max_drop: no figure may drop at all")
        checks = (self.min_accuracy, self.min_label_accuracy, self.min_label_f1, self.min_variant_accuracy)
        if all(c is None for c in checks) and not self._budget() and not self._baseline() and not self.baseline_version:
            raise ValueError(
                "the gate has no check: set min_accuracy, min_label_accuracy, min_label_f1, min_variant_accuracy, "
                "a device budget (device + max_latency_ms / max_ram_bytes / max_rom_bytes), a baseline or a "
                "baseline_version"
            )

    # -- checks ------------------------------------------------------------------------------------------------

    def _testing_checks(self, judge: _Judge) -> None:
        minimum = _params.optional_fraction("min_accuracy", self.min_accuracy)
        if minimum is not None:
            judge.at_least("accuracy", judge.testing()["accuracy"], minimum)
        if self.min_label_accuracy is not None:
            per_label = judge.testing()["per_label"]
            limits = _per_name_limits("min_label_accuracy", self.min_label_accuracy, list(per_label), "label")
            for label, limit in limits.items():
                judge.at_least(f"label_accuracy[{label}]", per_label[label]["accuracy"], limit)
        if self.min_label_f1 is not None:
            scores = label_f1(judge.testing()["confusion_matrix"])
            for label, limit in _per_name_limits("min_label_f1", self.min_label_f1, list(scores), "label").items():
                judge.at_least(f"label_f1[{label}]", scores[label], limit)

    def _variant_checks(self, judge: _Judge) -> None:
        if self.min_variant_accuracy is None:
            return
        variants = judge.variants()
        limits = _per_name_limits("min_variant_accuracy", self.min_variant_accuracy, list(variants), "variant")
        for variant, limit in limits.items():
            judge.at_least(f"variant_accuracy[{variant}]", variants[variant], limit)

    def _device_checks(self, judge: _Judge) -> None:
        budget = self._budget()
        if not budget:
            return
        device = str(self.device).strip()
        variant = _params.optional_str("device_variant", self.device_variant, choices=MODEL_VARIANTS) or "int8"
        engine = _params.optional_str("engine", self.engine, choices=ENGINES) or "eon"
        learn_id = _params.optional_int("learn_id", self.learn_id, minimum=1) or judge.keras_block()
        metadata = judge.hook.get_keras_metadata(learn_id)
        kinds = [m for m in metadata.get("modelValidationMetrics") or [] if isinstance(m, dict)]
        per_variant = _pick(kinds, variant, ("type",), "device_variant")
        devices = [d for d in per_variant.get("onDevicePerformance") or [] if isinstance(d, dict)]
        profile = _pick(devices, device, ("mcu", "name"), "device")
        memory = profile.get(engine)
        if not isinstance(memory, dict):
            present = [e for e in ENGINES if isinstance(profile.get(e), dict)]
            raise ValueError(f"engine: Studio reports no {engine!r} figures for {device!r}; it has {present}")
        figures = {
            "latency_ms": profile.get("latency"),
            "ram_bytes": memory.get("ramRequired"),
            "rom_bytes": memory.get("romRequired"),
        }
        for name, limit in budget.items():
            judge.at_most(f"{name}[{device}/{variant}/{engine}]", figures[name], limit)

    def _baseline_checks(self, judge: _Judge) -> None:
        baseline = self._baseline() or self._version_baseline(judge)
        if not baseline:
            return
        drop = _params.optional_fraction("max_drop", self.max_drop) or 0.0
        if "accuracy" in baseline:
            limit = max(0.0, baseline["accuracy"] - drop)
            judge.at_least("regression[accuracy]", judge.testing()["accuracy"], round(limit, 6))
        sources: dict[str, Callable[[], dict[str, float | None]]] = {
            "label_accuracy": lambda: {k: v["accuracy"] for k, v in judge.testing()["per_label"].items()},
            "variant_accuracy": judge.variants,
        }
        for key, figures_of in sources.items():
            if key not in baseline:
                continue
            now = figures_of()
            unknown = sorted(set(baseline[key]) - set(now))
            if unknown:
                raise ValueError(f"baseline.{key}: unknown name(s) {unknown}; the project has {list(now)}")
            for name, earlier in baseline[key].items():
                judge.at_least(f"regression[{key}][{name}]", now[name], round(max(0.0, earlier - drop), 6))


class _Judge:
    """Fetches each kind of figure once, on first need, and records every check's outcome."""

    def __init__(self, hook: EdgeImpulseHook, impulse_id: int | None) -> None:
        self.hook = hook
        self.impulse_id = impulse_id
        self.checks: list[dict[str, Any]] = []
        self.figures: dict[str, Any] = {}
        self.baseline: dict[str, Any] | None = None  # the version compared with, when there is one
        self._testing: dict[str, Any] | None = None
        self._variants: dict[str, float | None] | None = None

    def testing(self) -> dict[str, Any]:
        if self._testing is None:
            self._testing = summarize_model_testing(self.hook.get_model_testing_results(self.impulse_id))
            self.figures["accuracy"] = self._testing["accuracy"]
            self.figures["label_accuracy"] = {k: v["accuracy"] for k, v in self._testing["per_label"].items()}
        return self._testing

    def variants(self) -> dict[str, float | None]:
        if self._variants is None:
            metrics = self.hook.get_model_variant_metrics(self.impulse_id)
            self._variants = {str(m.get("variant")): _figure(m.get("accuracy")) for m in metrics}
            self.figures["variant_accuracy"] = dict(self._variants)
        return self._variants

    def keras_block(self) -> int:
        blocks = (self.hook.get_impulse() or {}).get("learnBlocks") or []
        for block in blocks:
            if isinstance(block, dict) and str(block.get("type", "")).startswith("keras"):
                return int(block["id"])
        kinds = [f"{b.get('id')}: {b.get('type')}" for b in blocks if isinstance(b, dict)]
        raise ValueError(f"learn_id: the impulse has no Keras learn block to read device figures from; it has {kinds}")

    def _record(self, name: str, figure: Any, limit: float, passed: Callable[[float], bool]) -> None:
        value = _figure(figure)
        self.checks.append(
            {"name": name, "figure": value, "limit": limit, "passed": value is not None and passed(value)}
        )

    def at_least(self, name: str, figure: Any, limit: float) -> None:
        self._record(name, figure, limit, lambda value: value >= limit)

    def at_most(self, name: str, figure: Any, limit: float) -> None:
        self._record(name, figure, limit, lambda value: value <= limit)

    def verdict(self) -> dict[str, Any]:
        failed = [c["name"] for c in self.checks if not c["passed"]]
        return {
            "passed": not failed,
            "project_id": self.hook.project_id,
            "checks": self.checks,
            "failed": failed,
            "figures": self.figures,
            "baseline": self.baseline,
        }
