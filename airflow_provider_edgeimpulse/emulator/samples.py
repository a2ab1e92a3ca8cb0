"""Data samples: the records behind raw-data, data summaries, ingestion and bulk relabelling."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from airflow_provider_edgeimpulse.emulator.clock import iso
from airflow_provider_edgeimpulse.emulator.errors import bad_request

CATEGORIES = ("training", "testing", "validation", "post-processing")
# Listing and counting also take "all" (RawDataFilterCategory of edgeimpulse-api 1.96).
FILTER_CATEGORIES = (*CATEGORIES, "all")
SENSORS = [
    {"index": 0, "name": "accX", "units": "m/s2"},
    {"index": 1, "name": "accY", "units": "m/s2"},
    {"index": 2, "name": "accZ", "units": "m/s2"},
]
INTERVAL_MS = 16.0
LENGTH_MS = 2000.0


@dataclass
class Sample:
    id: int
    filename: str
    category: str
    label: str
    created: datetime
    sha256: str
    size_bytes: int = 0
    metadata: dict[str, str] = field(default_factory=dict)
    last_modified: datetime | None = None
    length_ms: float = LENGTH_MS

    def to_json(self, project_id: int) -> dict[str, Any]:
        values = int(self.length_ms / INTERVAL_MS)
        modified = iso(self.last_modified or self.created)
        return {
            "id": self.id,
            "filename": self.filename,
            "signatureValidate": False,
            "signatureMethod": "none",
            "created": iso(self.created),
            "lastModified": modified,
            "added": iso(self.created),
            "category": self.category,
            "coldstorageFilename": f"ingestion/{self.sha256[:16]}.json",
            "label": self.label,
            "intervalMs": INTERVAL_MS,
            "frequency": 1000.0 / INTERVAL_MS,
            "originalIntervalMs": INTERVAL_MS,
            "originalFrequency": 1000.0 / INTERVAL_MS,
            "deviceName": "emulator",
            "deviceType": "EMULATOR",
            "sensors": SENSORS,
            "valuesCount": values,
            "totalLengthMs": self.length_ms,
            "boundingBoxes": [],
            "boundingBoxesType": "constrained_object_detection",
            "chartType": "chart",
            "isDisabled": False,
            "isProcessing": False,
            "processingError": False,
            "isCropped": False,
            "metadata": dict(self.metadata),
            "projectId": project_id,
            "sha256Hash": self.sha256,
            "datastreams": [
                {
                    "index": 0,
                    "chartType": "chart",
                    "intervalMs": INTERVAL_MS,
                    "frequencyHz": 1000.0 / INTERVAL_MS,
                    "sensors": SENSORS,
                    "valuesCount": values,
                    "totalLengthMs": self.length_ms,
                }
            ],
        }

    def payload_json(self) -> dict[str, Any]:
        values = int(self.length_ms / INTERVAL_MS)
        # A deterministic waveform: enough for a client to plot, no randomness to trip tests.
        rows = [[round((i % 25) / 25.0 + self.id, 3), 0.0, 9.81] for i in range(values)]
        return {
            "device_type": "EMULATOR",
            "sensors": SENSORS,
            "values": rows,
            "intervalMs": INTERVAL_MS,
            "frequencyHz": 1000.0 / INTERVAL_MS,
        }


@dataclass
class SampleQuery:
    """The filter parameters Studio shares between raw-data listing, counting and batch operations."""

    category: str | None = None
    labels: list[str] | None = None
    ids: list[int] | None = None
    exclude_ids: list[int] | None = None
    filename: str | None = None
    search: str | None = None
    min_id: int | None = None  # minId: ids >= this (edgeimpulse-api 1.96)
    max_id: int | None = None  # maxId: ids < this

    @classmethod
    def from_query(cls, query: Mapping[str, str], *, require_category: bool = True) -> SampleQuery:
        category = query.get("category")
        if category is None and require_category:
            raise bad_request("Missing parameter 'category'")
        if category is not None and category not in FILTER_CATEGORIES:
            raise bad_request(f"Invalid category '{category}', must be one of {', '.join(FILTER_CATEGORIES)}")
        return cls(
            category=category,
            labels=_json_list(query, "labels", str),
            ids=_json_list(query, "ids", int),
            exclude_ids=_json_list(query, "excludeIds", int),
            filename=query.get("filename") or None,
            search=query.get("search") or None,
            min_id=_int_param(query, "minId"),
            max_id=_int_param(query, "maxId"),
        )

    def matches(self, sample: Sample) -> bool:
        if self.category not in (None, "all") and sample.category != self.category:
            return False
        if self.min_id is not None and sample.id < self.min_id:
            return False
        if self.max_id is not None and sample.id >= self.max_id:
            return False
        if self.labels is not None and sample.label not in self.labels:
            return False
        if self.ids is not None and sample.id not in self.ids:
            return False
        if self.exclude_ids is not None and sample.id in self.exclude_ids:
            return False
        if self.filename is not None and self.filename.lower() not in sample.filename.lower():
            return False
        if self.search is not None:
            needle = self.search.lower()
            if needle not in sample.filename.lower() and needle not in sample.label.lower():
                return False
        return True

    def select(self, samples: Iterable[Sample]) -> list[Sample]:
        # Studio lists the newest samples first.
        return sorted((s for s in samples if self.matches(s)), key=lambda s: s.id, reverse=True)


def _int_param(query: Mapping[str, str], name: str) -> int | None:
    raw = query.get(name)
    if raw is None or raw == "":
        return None
    try:
        return int(raw)
    except ValueError:
        raise bad_request(f"Invalid '{name}' parameter, expected an integer: {raw}") from None


def _json_list(query: Mapping[str, str], name: str, kind: type) -> list[Any] | None:
    raw = query.get(name)
    if raw is None or raw == "":
        return None
    try:
        value = json.loads(raw)
    except ValueError:
        raise bad_request(f"Invalid '{name}' parameter, expected a JSON list: {raw}") from None
    if not isinstance(value, list) or not all(isinstance(v, kind) and not isinstance(v, bool) for v in value):
        raise bad_request(f"Invalid '{name}' parameter, expected a JSON list of {kind.__name__}: {raw}")
    return value


def data_summary(samples: Iterable[Sample]) -> dict[str, Any]:
    chosen = list(samples)
    labels = sorted({s.label for s in chosen if s.label})
    return {
        "totalLengthMs": float(sum(s.length_ms for s in chosen)),
        "labels": labels,
        "totalLabels": len(labels),
        "dataCount": len(chosen),
    }
