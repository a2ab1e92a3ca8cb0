"""What the Edge Impulse sensors share: the hook, the trigger deadline, soft-fail outside poke, reading events."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from datetime import timedelta
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar

from airflow.providers.common.compat.sdk import (
    AirflowException,
    AirflowFailException,
    AirflowSensorTimeout,
    AirflowSkipException,
    BaseSensorOperator,
)

from airflow_provider_edgeimpulse import trigger_events
from airflow_provider_edgeimpulse.hooks.task import EdgeImpulseTaskMixin
from airflow_provider_edgeimpulse.jobs.outage import OutageLog, is_transient, reason
from airflow_provider_edgeimpulse.studio import DEFAULT_CONN_ID

if TYPE_CHECKING:
    from airflow.providers.common.compat.sdk import Context, PokeReturnValue

T = TypeVar("T")


class EdgeImpulseBaseSensor(EdgeImpulseTaskMixin, BaseSensorOperator):
    """
    A sensor on Edge Impulse: ``edgeimpulse_conn_id`` and ``project_id`` (templated), the hook built from them.

    :param edgeimpulse_conn_id: the Airflow connection to Edge Impulse.
    :param project_id: overrides the connection's project. Templated.
    """

    def __init__(
        self,
        *,
        edgeimpulse_conn_id: str = DEFAULT_CONN_ID,
        project_id: int | str | None = None,
        **kwargs: Any,
    ) -> None:
        check_sensor_timing(kwargs)
        super().__init__(**kwargs)
        self.set_connection(edgeimpulse_conn_id, project_id)
        self._outage: OutageLog | None = None

    def poke(self, context: Context) -> bool | PokeReturnValue:
        """
        One :meth:`look` at Studio. A read that failed for a reason that passes (429, 5xx, no answer, a stall)
        is a "not yet": the sensor pokes again at its interval until Studio answers or its ``timeout`` passes,
        and the outage is logged once, not once per poke. An answer that cannot change (401, 403, 404) fails.
        """
        if self._outage is None:
            plan = "pokes again at its interval until Studio answers or the sensor's timeout passes"
            self._outage = OutageLog(self.waits_for(), plan=plan, logger=self.log)
        try:
            seen = self.look(context)
        except Exception as err:
            if is_transient(err):
                self._outage.failed("poke's read", err)
                return False
            self._outage.answered()  # with an outcome that fails the task, or an answer that cannot change
            raise
        self._outage.answered()
        return seen

    def look(self, context: Context) -> bool | PokeReturnValue:
        """Whether what the sensor waits for has happened, read from Studio once."""
        raise NotImplementedError

    def read_before_deferring(self, read: Callable[[], T]) -> T | None:
        """
        ``read()``, the look a deferrable sensor takes before it defers; ``None`` when Studio did not answer for a
        reason that passes. The sensor defers then all the same: its trigger reads on through the outage until
        the sensor's ``timeout``, as a poking sensor would, instead of the task failing at its first read.
        """
        try:
            return read()
        except Exception as err:
            if not is_transient(err):
                raise
            self.log.warning(
                "%s: Edge Impulse did not answer before deferring (%s); deferring all the same, the triggerer reads "
                "on until Studio answers or the sensor's timeout passes",
                self.waits_for(),
                reason(err),
            )
            return None

    def waits_for(self) -> str:
        """What the sensor waits for, as its log names it."""
        return f"Sensor {self.task_id}"

    def trigger_deadline(self) -> float:
        """The sensor's ``timeout`` as a UNIX time: absolute, so a triggerer restart does not extend it."""
        return time.time() + float(self.timeout)

    def fail_outside_poke(self, err: Exception) -> NoReturn:
        """
        Raise ``err`` as ``BaseSensorOperator.execute`` would: skip under ``soft_fail``/``never_fail``.

        For results met before deferring; poke() errors go through the base class, and execute_complete()
        errors through ``resume_execution``, which do this themselves.
        """
        if self.soft_fail or getattr(self, "never_fail", False):
            raise AirflowSkipException(f"Skipping ({'soft_fail' if self.soft_fail else 'never_fail'}): {err}") from err
        raise err

    def checked_event(self, event: Any) -> dict[str, Any]:
        """
        A trigger event that says ``success``; the matching exception for the others.

        Fail closed: anything that is not one of our events fails the task rather than passing it.
        ``failure`` is final (the remote outcome cannot change, so no retry); ``error`` may be retried.
        """
        status = trigger_events.checked_event(event, self.task_id)["status"]
        message = str(event.get("message") or f"the trigger reported {status}")
        if status == "failure":
            raise AirflowFailException(message)
        if status == "timeout":
            raise AirflowSensorTimeout(f"{message} (the sensor's timeout is {self.timeout:g} s)")
        if status == "error":
            raise AirflowException(message)
        return event


def check_sensor_timing(kwargs: dict[str, Any]) -> None:
    """
    ``poke_interval`` and ``timeout`` of a sensor's kwargs, checked before Airflow's own checks.

    Airflow's errors do not say which value was wrong, and it accepts a poke interval of 0, which on an Edge
    Impulse sensor means calling Studio in a tight loop. ``timedelta`` values are checked as seconds.
    """
    for name, allow_zero in (("poke_interval", False), ("timeout", True)):
        if name not in kwargs or kwargs[name] is None:
            continue
        value = kwargs[name]
        seconds = value.total_seconds() if isinstance(value, timedelta) else value
        if isinstance(seconds, bool) or not isinstance(seconds, int | float):
            raise ValueError(f"{name} must be a number of seconds (or a timedelta), got {value!r}")
        low_ok = seconds >= 0 if allow_zero else seconds > 0
        if not low_ok or not math.isfinite(seconds):
            kind = "non-negative" if allow_zero else "positive"
            raise ValueError(f"{name} must be a {kind}, finite number of seconds, got {value!r}")


def positive_int(name: str, value: Any) -> int:
    """A rendered id (``int``, or a string from a template or XCom) as a positive ``int``."""
    if isinstance(value, bool):
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    try:
        number = int(str(value).strip())
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a positive integer, got {value!r}") from None
    if number <= 0:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return number


def is_template(value: Any) -> bool:
    return isinstance(value, str) and ("{{" in value or "{%" in value)
