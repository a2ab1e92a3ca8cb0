"""The EON Tuner: configure and start a search, and adopt one of its trials (or the best) as the impulse."""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from airflow.exceptions import AirflowProviderDeprecationWarning

from airflow_provider_edgeimpulse import validation as _params
from airflow_provider_edgeimpulse.hooks import job_requests
from airflow_provider_edgeimpulse.jobs import tuner
from airflow_provider_edgeimpulse.operators.job import EdgeImpulseRunJobOperator, JobRequest

if TYPE_CHECKING:
    from airflow.providers.common.compat.sdk import Context

    from airflow_provider_edgeimpulse.hooks.edgeimpulse import EdgeImpulseHook
TUNING_ALGORITHMS = ("random", "hyperband", "bayesian", "custom")
OPTIMIZATION_PRECISIONS = ("float32", "int8")
BEST = "best"
SELECTION_XCOM_KEY = "tuner_selection"


class EdgeImpulseStartEONTunerOperator(EdgeImpulseRunJobOperator):
    """
    Configure the EON Tuner (``POST optimize/config``) and start a search (``jobs/optimize``).

    By default the task returns as soon as the search started (``wait_for_completion=False``): a search
    takes hours, and ``EONTunerStateSensor`` waits for it with progress in its log (trials completed,
    failed, running). Set ``wait_for_completion=True`` to wait here on the coordinator job instead.

    The configuration is built from the named parameters plus ``optimize_config`` (any other
    ``OptimizeConfig`` field by its API name); a field given both ways with different values is an
    error. The config is posted as given, not merged with the project's current one. When no
    configuration parameter is given at all, the search runs with the configuration already set in Studio.

    :param target_device: the device to optimise for: a name such as ``"cortex-m4f-80mhz"``, or
        ``{"name", "ram", "rom"}``. Templated.
    :param target_latency: the latency budget in milliseconds. Templated.
    :param tuning_max_trials: the most trials to run. Templated.
    :param tuning_workers: trials run in parallel. Templated.
    :param training_cycles: training epochs per trial. Templated.
    :param tuning_algorithm: ``random``, ``hyperband``, ``bayesian`` or ``custom``. Templated.
    :param optimization_precision: ``float32`` or ``int8``. Templated.
    :param max_total_training_time: the budget of the whole search, in seconds. Templated.
    :param tuner_name: the name of the run in Studio. Templated.
    :param optimize_config: further ``OptimizeConfig`` fields (``space``, ``earlyStopping``, ...). Templated.
    :param extended_from_job_id: continue the search of this earlier coordinator job. Templated.

    Common parameters: see :class:`EdgeImpulseRunJobOperator` (the Studio link opens the tuner page).

    :return: the tuner coordinator job id (an ``int``; also under the XCom key ``job_id``) in every mode.
        When waiting, the task resumes on a worker after the job to return it (``completes_in_trigger`` is off).
    """

    template_fields: Sequence[str] = (
        "project_id",
        "timeout",
        "target_device",
        "target_latency",
        "tuning_max_trials",
        "tuning_workers",
        "training_cycles",
        "tuning_algorithm",
        "optimization_precision",
        "max_total_training_time",
        "tuner_name",
        "optimize_config",
        "extended_from_job_id",
    )
    template_fields_renderers = {"optimize_config": "json"}
    tuner_link = True
    # The return value (the id) is made on a worker; ending in the trigger would return the outcome dict.

    def __init__(
        self,
        *,
        target_device: str | dict[str, Any] | None = None,
        target_latency: int | str | None = None,
        tuning_max_trials: int | str | None = None,
        tuning_workers: int | str | None = None,
        training_cycles: int | str | None = None,
        tuning_algorithm: str | None = None,
        optimization_precision: str | None = None,
        max_total_training_time: float | str | None = None,
        tuner_name: str | None = None,
        optimize_config: dict[str, Any] | str | None = None,
        extended_from_job_id: int | str | None = None,
        wait_for_completion: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(wait_for_completion=wait_for_completion, **kwargs)
        self.target_device = target_device
        self.target_latency = target_latency
        self.tuning_max_trials = tuning_max_trials
        self.tuning_workers = tuning_workers
        self.training_cycles = training_cycles
        self.tuning_algorithm = tuning_algorithm
        self.optimization_precision = optimization_precision
        self.max_total_training_time = max_total_training_time
        self.tuner_name = tuner_name
        self.optimize_config = optimize_config
        self.extended_from_job_id = extended_from_job_id

    def _target_device(self) -> dict[str, Any] | None:
        device = self.target_device
        if isinstance(device, str) and device.strip().startswith("{"):
            device = _params.optional_dict("target_device", device)
        if device is None:
            return None
        if isinstance(device, str):
            return {"name": _params.required_str("target_device", device)}
        if not isinstance(device, dict) or not isinstance(device.get("name"), str) or not device["name"].strip():
            raise ValueError(f"target_device must be a device name or a dict with a 'name', got {self.target_device!r}")
        result: dict[str, Any] = {"name": device["name"].strip()}
        for key in ("ram", "rom"):
            if device.get(key) is not None:
                result[key] = _params.required_int(f"target_device[{key!r}]", device[key], minimum=1)
        unknown = sorted(set(device) - {"name", "ram", "rom"})
        if unknown:
            raise ValueError(f"target_device has unknown keys {unknown}; expected name, ram, rom")
        return result

    def tuner_config(self) -> dict[str, Any] | None:
        """The ``OptimizeConfig`` to post, or ``None`` to keep the project's; checked before any request."""
        named: dict[str, Any] = {
            "targetDevice": self._target_device(),
            "targetLatency": _params.optional_int("target_latency", self.target_latency, minimum=1),
            "tuningMaxTrials": _params.optional_int("tuning_max_trials", self.tuning_max_trials, minimum=1),
            "tuningWorkers": _params.optional_int("tuning_workers", self.tuning_workers, minimum=1),
            "trainingCycles": _params.optional_int("training_cycles", self.training_cycles, minimum=1),
            "tuningAlgorithm": _params.optional_str(
                "tuning_algorithm", self.tuning_algorithm, choices=TUNING_ALGORITHMS
            ),
            "optimizationPrecision": _params.optional_str(
                "optimization_precision", self.optimization_precision, choices=OPTIMIZATION_PRECISIONS
            ),
            "maxTotalTrainingTime": _params.optional_number(
                "max_total_training_time", self.max_total_training_time, minimum=1
            ),
            "name": _params.optional_str("tuner_name", self.tuner_name),
        }
        config = _params.optional_dict("optimize_config", self.optimize_config) or {}
        for key, value in named.items():
            if value is None:
                continue
            if key in config and config[key] != value:
                raise ValueError(f"optimize_config[{key!r}]={config[key]!r} contradicts the parameter giving {value!r}")
            config[key] = value
        if not config:
            return None
        missing = [key for key in ("targetDevice", "targetLatency") if key not in config]
        if missing:
            raise ValueError(
                f"The EON Tuner config needs {' and '.join(missing)}: set target_device and target_latency "
                "(or targetDevice/targetLatency in optimize_config)"
            )
        latency = config["targetLatency"]
        if isinstance(latency, bool) or not isinstance(latency, int) or latency < 1:
            raise ValueError(f"optimize_config['targetLatency'] must be a positive integer (ms), got {latency!r}")
        device = config["targetDevice"]
        if not isinstance(device, dict) or not isinstance(device.get("name"), str) or not device["name"]:
            raise ValueError(f"optimize_config['targetDevice'] must be a dict with a 'name', got {device!r}")
        return config

    def job_request(self, hook: EdgeImpulseHook, context: Context) -> JobRequest:
        extended_from = _params.optional_int("extended_from_job_id", self.extended_from_job_id, minimum=1)
        config = self.tuner_config()
        if config is None:
            self.log.info("No EON Tuner settings given: the search uses the configuration set in Studio")
        else:
            # Posting the same config again (a retry re-attaching to its search) changes nothing.
            hook.set_optimize_config(config)
            self.log.info("EON Tuner configured: %s", config)
        return job_requests.optimize(extended_from)

    def execute(self, context: Context) -> Any:
        result = super().execute(context)
        # Not waiting, the base answers {"job_id", "status": "started"}; the id alone is this task's result.
        return result.get("job_id") if isinstance(result, dict) else result

    def job_result(self, hook: EdgeImpulseHook, outcome: dict[str, Any], context: Context) -> Any:
        return int(outcome["job_id"])


class EdgeImpulseSetTunerPrimaryOperator(EdgeImpulseRunJobOperator):
    """
    Make an EON Tuner trial the project's impulse: ``jobs/set-tuner-primary-job?trialId``.

    With ``trial_id="best"`` the trial is chosen from the run ``tuner_coordinator_job_id`` the way
    ``EONTunerStateSensor`` chooses its ``best_trial`` (one function, :func:`jobs.tuner.best_trial`): among its
    completed trials, the one with the highest (``metric_mode="max"``) or lowest (``"min"``) ``metric``.
    Everything is decided before the job starts: no completed trial, an unknown metric or a run still
    searching (unless ``require_finished=False``) fails the task without starting anything.

    :param trial_id: the trial to adopt, or ``"best"``. Templated.
    :param tuner_coordinator_job_id: the EON Tuner run (its coordinator job id); needed for ``"best"``;
        with an explicit ``trial_id`` it is used to check that the trial exists and completed. Templated.
    :param metric: what "best" means: ``accuracy`` (validation set), ``test_accuracy``, ``loss``,
        ``test_loss``, ``latency``, ``ram``, ``rom``, or a path such as ``test.accuracy`` or
        ``validation.int8.accuracy`` (the vocabulary is described in ``jobs/tuner.py``). Templated.
    :param metric_mode: ``max`` or ``min``; by default the metric's natural direction (accuracies ``max``,
        loss, latency and sizes ``min``); required for other paths. Templated. ``mode`` is its old name, still
        accepted with a deprecation warning.
    :param model_variant: the model variant whose figures count (``float32``, ``int8``); the run's
        ``optimizationPrecision`` when omitted. Templated.
    :param impulse_name: the name of the impulse made from the trial. Templated.
    :param require_finished: refuse to choose while the search is still running. Templated.

    Common parameters: see :class:`EdgeImpulseRunJobOperator`.

    :return: the job outcome plus ``trial_id``, ``metric`` and ``value`` (``None`` for an explicit trial);
        those three are also pushed as XComs of their own. The task resumes on a worker after the job so
        that the return value is the same in every mode (``completes_in_trigger`` is off).
    """

    template_fields: Sequence[str] = (
        "project_id",
        "timeout",
        "trial_id",
        "tuner_coordinator_job_id",
        "metric",
        "metric_mode",
        "model_variant",
        "impulse_name",
        "require_finished",
    )

    def __init__(
        self,
        *,
        trial_id: str,
        tuner_coordinator_job_id: int | str | None = None,
        metric: str = "accuracy",
        metric_mode: str | None = None,
        model_variant: str | None = None,
        impulse_name: str | None = None,
        require_finished: bool | str = True,
        mode: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if mode is not None:
            warnings.warn(
                "EdgeImpulseSetTunerPrimaryOperator(mode=...) is deprecated; use metric_mode=..., "
                "the name EONTunerStateSensor uses too",
                AirflowProviderDeprecationWarning,
                stacklevel=2,
            )
            if metric_mode is not None and metric_mode != mode:
                raise ValueError(f"metric_mode={metric_mode!r} and its old name mode={mode!r} disagree; give one")
            metric_mode = mode
        self.trial_id = trial_id
        self.tuner_coordinator_job_id = tuner_coordinator_job_id
        self.metric = metric
        self.metric_mode = metric_mode
        self.model_variant = model_variant
        self.impulse_name = impulse_name
        self.require_finished = require_finished
        self._selection: dict[str, Any] | None = None

    def _choose(self, hook: EdgeImpulseHook) -> dict[str, Any]:
        trial_id = _params.required_str("trial_id", None if self.trial_id is None else str(self.trial_id))
        run_id = _params.optional_int("tuner_coordinator_job_id", self.tuner_coordinator_job_id, minimum=1)
        metric, mode, variant = tuner.check_choice(self.metric, self.metric_mode, self.model_variant)
        require_finished = _params.required_bool("require_finished", self.require_finished)
        _params.optional_str("impulse_name", self.impulse_name)
        is_best = trial_id.lower() == BEST
        if is_best and run_id is None:
            raise ValueError("trial_id='best' needs tuner_coordinator_job_id (the EON Tuner run to choose from)")
        if run_id is None:
            return {"trial_id": trial_id, "metric": None, "value": None}

        state = hook.get_tuner_state(run_id)
        if not is_best:
            # trials_of skips what is not a trial object: a malformed state is "no such trial", not a crash.
            trial = next((t for t in tuner.trials_of(state) if str(t.get("id")) == trial_id), None)
            if trial is None:
                raise ValueError(f"trial_id {trial_id!r} is not a trial of EON Tuner run {run_id}")
            if trial.get("status") != "completed":
                raise ValueError(
                    f"trial_id {trial_id!r} of EON Tuner run {run_id} is {trial.get('status')!r}; "
                    "only a completed trial can be adopted"
                )
            return {"trial_id": trial_id, "metric": None, "value": None}
        if require_finished and tuner.is_running(state):
            raise ValueError(
                f"EON Tuner run {run_id} is still searching ({tuner.progress_line(state)}); "
                "wait for it (EONTunerStateSensor) or set require_finished=False"
            )
        chosen, value = tuner.best_trial(state, metric, mode, variant=variant)
        self.log.info("Best trial of EON Tuner run %s by %s (%s): %s = %s", run_id, metric, mode, chosen, value)
        return {"trial_id": chosen, "metric": metric, "value": value}

    def job_request(self, hook: EdgeImpulseHook, context: Context) -> JobRequest:
        selection = self._choose(hook)
        self._selection = selection
        ti = context["ti"]
        # Pushed before the job starts: the task resumes on a fresh operator after a deferral and must
        # report the trial chosen now, not one chosen again from a search that may have moved on.
        ti.xcom_push(key=SELECTION_XCOM_KEY, value=selection)
        for key in ("trial_id", "metric", "value"):
            ti.xcom_push(key=key, value=selection[key])
        name = _params.optional_str("impulse_name", self.impulse_name)
        return job_requests.set_tuner_primary(selection["trial_id"], name or None)

    def job_result(self, hook: EdgeImpulseHook, outcome: dict[str, Any], context: Context) -> Any:
        selection = self._selection
        if selection is None:
            ti = context["ti"]
            selection = ti.xcom_pull(task_ids=ti.task_id, key=SELECTION_XCOM_KEY)
        if not isinstance(selection, dict):
            # The job succeeded: failing now would only make a retry fail the same way.
            self.log.warning("The trial this task chose is not in its XComs; returning the outcome without it")
            selection = {}
        return {**outcome, **{key: selection.get(key) for key in ("trial_id", "metric", "value")}}
