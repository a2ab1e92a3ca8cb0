"""The EON Tuner: a coordinator job whose steps move trials pending -> running -> completed (or failed)."""

from __future__ import annotations

import copy
import functools
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from airflow_provider_edgeimpulse.emulator.clock import iso, utcnow
from airflow_provider_edgeimpulse.emulator.jobs import Step

DEFAULT_CONFIG: dict[str, Any] = {
    "name": "EON Tuner run",
    "targetLatency": 100,
    "targetDevice": {"name": "cortex-m4f-80mhz", "ram": 131072, "rom": 1048576},
    "trainingCycles": 10,
    "tuningWorkers": 1,
    "tuningAlgorithm": "random",
    "optimizationPrecision": "float32",
}


@dataclass
class Trial:
    id: str
    name: str
    index: int
    will_fail: bool
    impulse: dict[str, Any]
    status: str = "pending"
    finished: datetime | None = None
    # The model variant the run optimises for (OptimizeConfig.optimizationPrecision): the one trials report.
    precision: str = "float32"

    @property
    def accuracy(self) -> float:
        """Validation accuracy of the reported variant: quantising to int8 costs a point."""
        loss_to_int8 = 0.01 if self.precision == "int8" else 0.0
        return round(0.78 + 0.035 * ((self.index * 3) % 6) - loss_to_int8, 4)

    @property
    def latency_ms(self) -> int:
        return 4 + 3 * self.index

    @property
    def ram_bytes(self) -> int:
        return 6144 + 2048 * self.index

    @property
    def rom_bytes(self) -> int:
        return 24576 + 8192 * self.index

    def _metrics(self, accuracy: float) -> dict[str, Any]:
        sizes = {
            "ramRequired": self.ram_bytes,
            "romRequired": self.rom_bytes,
            "arenaSize": self.ram_bytes // 2,
            "modelSize": self.rom_bytes // 2,
        }
        return {
            "type": self.precision,
            "loss": round(1.0 - accuracy, 4),
            "accuracy": accuracy,
            "confusionMatrix": [[accuracy * 100, (1 - accuracy) * 100], [(1 - accuracy) * 100, accuracy * 100]],
            "report": {},
            "onDevicePerformance": [
                {
                    "mcu": "cortex-m4f-80mhz",
                    "name": "Cortex-M4F 80MHz",
                    "isDefault": True,
                    "latency": float(self.latency_ms),
                    "tflite": sizes,
                    "eon": sizes,
                    "hasPerformance": True,
                }
            ],
            "visualization": "featureExplorer",
            "isSupportedOnMcu": True,
            "additionalMetrics": [],
        }

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "id": self.id,
            "name": self.name,
            "status": self.status,
            "blocks": [
                {"id": i + 1, "retries": 0, "status": _block_status(self.status), "type": kind}
                for i, kind in enumerate(("input", "dsp", "learn"))
            ],
            "impulse": copy.deepcopy(self.impulse),
            "retries": 0,
            "workerId": "worker-0",
        }
        if self.status == "completed":
            body["metrics"] = {
                "validation": {self.precision: self._metrics(self.accuracy)},
                "test": {self.precision: self._metrics(round(self.accuracy - 0.02, 4))},
            }
            body["devicePerformance"] = {"latency": self.latency_ms, "ram": self.ram_bytes, "rom": self.rom_bytes}
            body["lastCompletedTraining"] = iso(self.finished or utcnow())
        return body


def _block_status(trial_status: str) -> str:
    return {"pending": "pending", "running": "running", "completed": "completed"}.get(trial_status, "failed")


@dataclass
class TunerRun:
    coordinator_job_id: int
    index: int
    config: dict[str, Any]
    trials: list[Trial]
    created: datetime = field(default_factory=utcnow)
    running: bool = True
    job_status: str = "running"
    job_error: str | None = None

    @classmethod
    def create(
        cls, job_id: int, index: int, config: dict[str, Any], impulse: dict[str, Any], trials: int, failures: int
    ) -> TunerRun:
        candidates = []
        for i in range(trials):
            candidate = copy.deepcopy(impulse)
            for block in candidate.get("learnBlocks", []):
                if block.get("type") == "keras":
                    block["title"] = f"Classification (candidate {i + 1})"
            candidates.append(
                Trial(
                    id=f"trial_{job_id}_{i}",
                    name=f"trial {i + 1}",
                    index=i,
                    will_fail=i >= trials - failures,
                    impulse={k: candidate.get(k, []) for k in ("inputBlocks", "dspBlocks", "learnBlocks")},
                    precision=str(config.get("optimizationPrecision") or "float32"),
                )
            )
        return cls(coordinator_job_id=job_id, index=index, config=copy.deepcopy(config), trials=candidates)

    @property
    def name(self) -> str:
        return str(self.config.get("name") or f"Run {self.index}")

    def steps(self) -> list[Step]:
        steps: list[Step] = [self._begin]
        steps += [functools.partial(self._advance, i) for i in range(len(self.trials))]
        steps.append(self._summary)
        return steps

    def _begin(self) -> list[str]:
        device = self.config.get("targetDevice", {}).get("name", "?")
        if self.trials:
            self.trials[0].status = "running"
        return [
            f"Starting EON Tuner '{self.name}' with {len(self.trials)} trials",
            f"Target device: {device}, target latency: {self.config.get('targetLatency')} ms",
        ]

    def _advance(self, i: int) -> list[str]:
        trial = self.trials[i]
        if trial.status in ("completed", "failed"):
            return []
        trial.finished = utcnow()
        if i + 1 < len(self.trials) and self.trials[i + 1].status == "pending":
            self.trials[i + 1].status = "running"
        if trial.will_fail:
            trial.status = "failed"
            return [f"Trial {trial.id} failed: training diverged (emulated trial failure)"]
        trial.status = "completed"
        return [
            f"Trial {trial.id} completed: accuracy {trial.accuracy:.2%}, latency {trial.latency_ms} ms, "
            f"RAM {trial.ram_bytes} B, ROM {trial.rom_bytes} B"
        ]

    def _summary(self) -> list[str]:
        done = [t for t in self.trials if t.status == "completed"]
        failed = sum(t.status == "failed" for t in self.trials)
        best = max(done, key=lambda t: t.accuracy, default=None)
        tail = f", best {best.id} ({best.accuracy:.2%})" if best else ""
        return [f"EON Tuner finished: {len(done)} completed, {failed} failed{tail}"]

    def end(self, success: bool, *, cancelled: bool, reason: str) -> None:
        self.running = False
        if success:
            self.job_status = "success"
            return
        self.job_status = "cancelled" if cancelled else "failed"
        self.job_error = None if cancelled else reason
        for trial in self.trials:
            if trial.status == "running":
                trial.status = "failed"

    def state_json(self) -> dict[str, Any]:
        counts = {s: sum(t.status == s for t in self.trials) for s in ("pending", "running", "completed", "failed")}
        workers = int(self.config.get("tuningWorkers") or 1)
        busy = min(workers, counts["running"]) if self.running else 0
        body: dict[str, Any] = {
            "success": True,
            "config": copy.deepcopy(self.config),
            "status": {
                "numPendingTrials": counts["pending"],
                "numRunningTrials": counts["running"],
                "numCompletedTrials": counts["completed"],
                "numFailedTrials": counts["failed"],
                "numReadyWorkers": (workers - busy) if self.running else 0,
                "numBusyWorkers": busy,
                "numPendingWorkers": 0,
                "status": "running" if self.running else "completed",
            },
            "tunerJobIsRunning": self.running,
            "trials": [t.to_json() for t in self.trials],
            "projectDataType": "motion",
            "workers": [{"workerId": f"worker-{i}", "status": "busy" if i < busy else "ready"} for i in range(workers)],
            "nextRunIndex": self.index + 1,
            "canExtendSearch": False,
            "isWhitelabel": False,
            "totalTrainingTimeExceeded": False,
            # The emulator runs the tuner inside the coordinator job, so both ids name the same job.
            "tunerJobId": self.coordinator_job_id,
            "tunerCoordinatorJobId": self.coordinator_job_id,
            "tuningAlgorithm": self.config.get("tuningAlgorithm", "random"),
        }
        if self.job_error:
            body["jobError"] = self.job_error
        return body

    def run_json(self) -> dict[str, Any]:
        return {
            "tunerJobId": self.coordinator_job_id,
            "tunerCoordinatorJobId": self.coordinator_job_id,
            "index": self.index,
            "name": self.name,
            "created": iso(self.created),
            "jobStatus": self.job_status,
            "visible": True,
        }

    def trial(self, trial_id: str) -> Trial | None:
        return next((t for t in self.trials if t.id == trial_id), None)
