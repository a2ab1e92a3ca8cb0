"""The one emulated project: its impulse, samples, EON Tuner runs and deployments, seeded on every reset."""

from __future__ import annotations

import asyncio
import hashlib
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from airflow_provider_edgeimpulse.emulator.clock import Monotonic, iso, utcnow
from airflow_provider_edgeimpulse.emulator.model import ModelProfile
from airflow_provider_edgeimpulse.emulator.samples import Sample, data_summary
from airflow_provider_edgeimpulse.emulator.tuner import TunerRun

# Seeded ids others rely on (see the emulator's documentation): impulse 1, input block 1, DSP block 3,
# Keras classifier 4, anomaly (K-means) block 5.
IMPULSE_ID = 1
INPUT_BLOCK_ID = 1
DSP_BLOCK_ID = 3
KERAS_BLOCK_ID = 4
ANOMALY_BLOCK_ID = 5
SEED_LABELS = ("idle", "updown", "wave")
SEED_TRAINING_PER_LABEL = 4
SEED_TESTING_PER_LABEL = 2


def seeded_impulse() -> dict[str, Any]:
    return {
        "id": IMPULSE_ID,
        "name": "Impulse #1",
        "type": "default",
        "inputBlocks": [
            {
                "id": INPUT_BLOCK_ID,
                "type": "time-series",
                "name": "Time series",
                "title": "Time series data",
                "windowSizeMs": 2000,
                "windowIncreaseMs": 500,
                "frequencyHz": 62.5,
                "padZeros": True,
            }
        ],
        "dspBlocks": [
            {
                "id": DSP_BLOCK_ID,
                "type": "spectral-analysis",
                "name": "Spectral features",
                "axes": ["accX", "accY", "accZ"],
                "title": "Spectral Analysis",
                "implementationVersion": 4,
                "input": INPUT_BLOCK_ID,
            }
        ],
        "learnBlocks": [
            {
                "id": KERAS_BLOCK_ID,
                "type": "keras",
                "name": "Classifier",
                "dsp": [DSP_BLOCK_ID],
                "title": "Classification",
            },
            {
                "id": ANOMALY_BLOCK_ID,
                "type": "anomaly",
                "name": "Anomaly detection",
                "dsp": [DSP_BLOCK_ID],
                "title": "Anomaly Detection (K-means)",
            },
        ],
        "postProcessingBlocks": [],
    }


@dataclass
class Deployment:
    version: int
    format: str
    engine: str
    model_type: str
    job_id: int
    created: datetime
    ready: bool = False
    path: str | None = None
    lock: asyncio.Lock | None = None  # one writer while the artifact is made on first download


@dataclass
class Version:
    """A stored snapshot of the project (``ListVersionsResponse.versions[]``)."""

    id: int
    version: int
    description: str
    created: datetime
    bucket: dict[str, Any]
    training_accuracy: float | None = None
    test_accuracy: float | None = None
    public_project_id: int | None = None
    public_project_url: str | None = None
    total_samples: int = 0

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "id": self.id,
            "version": self.version,
            "description": self.description,
            "bucket": dict(self.bucket),
            "created": iso(self.created),
            "userId": 1,
            "userName": "emulator",
            "accuracyBasedOnImpulse": "Impulse #1",
            "totalSamplesCount": str(self.total_samples),
        }
        if self.training_accuracy is not None:
            body["trainingAccuracy"] = self.training_accuracy
        if self.test_accuracy is not None:
            body["testAccuracy"] = self.test_accuracy
        if self.public_project_id is not None:
            body["publicProjectId"] = self.public_project_id
            body["publicProjectUrl"] = self.public_project_url
        return body


@dataclass
class ProjectData:
    id: int
    name: str
    owner: str
    created: datetime
    impulse: dict[str, Any] | None
    impulse_complete: bool = True
    samples: dict[int, Sample] = field(default_factory=dict)
    optimize_config: dict[str, Any] | None = None
    tuner_runs: dict[int, TunerRun] = field(default_factory=dict)
    deployments: dict[int, Deployment] = field(default_factory=dict)
    versions: dict[int, Version] = field(default_factory=dict)
    # Studio remembers the "run model testing while versioning" checkbox from the last version job.
    run_model_testing_while_versioning: bool = False
    classified: bool = False
    evaluated: bool = False
    compute_ms: int = 0
    model: ModelProfile = field(default_factory=ModelProfile)
    model_trained: datetime | None = None
    # What the next successful training job makes (None: the same kind of model as now).
    next_model: ModelProfile | None = None
    clock: Monotonic = field(default_factory=Monotonic)
    _next_sample_id: int = 1
    _next_impulse_id: int = IMPULSE_ID + 1
    _next_deployment_version: int = 1
    # Version numbers and ids are never reused, also after a deletion.
    next_version: int = 1
    _next_version_id: int = 1

    def add_sample(
        self,
        *,
        filename: str,
        category: str,
        label: str,
        sha256: str,
        size_bytes: int = 0,
        metadata: dict[str, str] | None = None,
        created: datetime | None = None,
    ) -> Sample:
        sample = Sample(
            id=self._next_sample_id,
            filename=filename,
            category=category,
            label=label,
            created=created or self.clock.now(),
            sha256=sha256,
            size_bytes=size_bytes,
            metadata=metadata or {},
        )
        self._next_sample_id += 1
        self.samples[sample.id] = sample
        return sample

    def trained(self) -> None:
        """A training job succeeded: the impulse is complete and holds the model it made."""
        self.impulse_complete = True
        self.model_trained = self.clock.now()
        if self.next_model is not None:
            self.model, self.next_model = self.next_model, None

    def new_impulse_id(self) -> int:
        self._next_impulse_id += 1
        return self._next_impulse_id - 1

    def new_deployment_version(self) -> int:
        self._next_deployment_version += 1
        return self._next_deployment_version - 1

    def add_version(self, description: str, bucket: dict[str, Any], **figures: Any) -> Version:
        version = Version(
            id=self._next_version_id,
            version=self.next_version,
            description=description,
            created=self.clock.now(),
            bucket=bucket,
            total_samples=len(self.samples),
            **figures,
        )
        self._next_version_id += 1
        self.next_version += 1
        self.versions[version.id] = version
        return version

    def learn_block(self, learn_id: int) -> dict[str, Any] | None:
        blocks = (self.impulse or {}).get("learnBlocks", [])
        return next((b for b in blocks if b.get("id") == learn_id), None)

    def dsp_block(self, dsp_id: int) -> dict[str, Any] | None:
        blocks = (self.impulse or {}).get("dspBlocks", [])
        return next((b for b in blocks if b.get("id") == dsp_id), None)

    def in_category(self, category: str) -> list[Sample]:
        return [s for s in self.samples.values() if s.category == category]

    def summary(self, category: str | None = None) -> dict[str, Any]:
        chosen = self.samples.values() if category is None else self.in_category(category)
        return data_summary(chosen)

    def info_project(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "description": "A project served by the local Edge Impulse emulator",
            "created": iso(self.created),
            "owner": self.owner,
            "ownerUserId": 1,
            "ownerIsDeveloperProfile": True,
            "collaborators": [],
            "labelingMethod": "single_label",
            "metadata": {},
            "isEnterpriseProject": False,
            "whitelabelId": 1,
            "tier": "free",
            "hasPublicVersion": any(v.public_project_id is not None for v in self.versions.values()),
            "isPublic": False,
            "allowsLivePublicAccess": False,
            "indPauseProcessingSamples": False,
            "publicProjectListed": False,
        }


def seed_project(project_id: int, owner: str) -> ProjectData:
    created = utcnow() - timedelta(days=7)
    project = ProjectData(
        id=project_id,
        name="Emulated gestures",
        owner=owner,
        created=created,
        impulse=seeded_impulse(),
        model_trained=created + timedelta(hours=1),
    )
    moment = created
    for category, per_label in (("training", SEED_TRAINING_PER_LABEL), ("testing", SEED_TESTING_PER_LABEL)):
        for label in SEED_LABELS:
            for n in range(per_label):
                moment += timedelta(minutes=1)
                name = f"{label}.{category[:5]}{n + 1}"
                digest = hashlib.sha256(f"{project_id}/{name}".encode()).hexdigest()
                project.add_sample(filename=name, category=category, label=label, sha256=digest, created=moment)
    return project
