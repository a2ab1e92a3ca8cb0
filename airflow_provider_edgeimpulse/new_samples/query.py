"""Which samples to watch: the raw-data filters (category, labels, filename, search), validated once."""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from typing import Any

from airflow_provider_edgeimpulse import validation
from airflow_provider_edgeimpulse.studio import SAMPLE_CATEGORIES

# The categories GET raw-data and raw-data/count filter on.
CATEGORIES = (*SAMPLE_CATEGORIES, "all")
WATERMARK_KEY_PREFIX = "edgeimpulse_new_samples"
_KEY_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]+")
_MAX_KEY_CHARS = 250  # the length of Airflow's variable.key column


@dataclass(frozen=True)
class SampleFilter:
    """The raw-data filters shared by listing and counting; ``labels`` is ``None`` for "any label"."""

    category: str = "training"
    labels: tuple[str, ...] | None = None
    filename: str | None = None
    search: str | None = None

    @classmethod
    def parse(cls, category: Any, labels: Any = None, filename: Any = None, search: Any = None) -> SampleFilter:
        """Validate rendered arguments (templates render to text, so both forms are accepted)."""
        parsed_labels = validation.optional_str_list("labels", labels)
        return cls(
            category=validation.required_str("category", category, choices=CATEGORIES),
            labels=tuple(parsed_labels) if parsed_labels is not None else None,
            filename=validation.optional_str("filename", filename),
            search=validation.optional_str("search", search),
        )

    @classmethod
    def of(cls, category: str, labels: list[str] | None, filename: str | None, search: str | None) -> SampleFilter:
        """From already-checked plain values (trigger kwargs)."""
        return cls(category, tuple(labels) if labels is not None else None, filename, search)

    def params(self) -> dict[str, Any]:
        """Query parameters of raw-data and raw-data/count (``labels`` as the JSON text the API expects)."""
        return {
            "category": self.category,
            "labels": json.dumps(list(self.labels)) if self.labels is not None else None,
            "filename": self.filename,
            "search": self.search,
        }

    def describe(self) -> str:
        parts = [f"category {self.category!r}"]
        if self.labels is not None:
            parts.append(f"labels {list(self.labels)}")
        if self.filename is not None:
            parts.append(f"filename containing {self.filename!r}")
        if self.search is not None:
            parts.append(f"search {self.search!r}")
        return ", ".join(parts)

    def digest(self) -> str:
        identity = json.dumps(
            [self.category, sorted(self.labels) if self.labels is not None else None, self.filename, self.search]
        )
        return hashlib.sha256(identity.encode()).hexdigest()[:12]


def default_watermark_key(scope: str, conn_id: str, project_id: int | None, sample_filter: SampleFilter) -> str:
    """
    A readable, stable Airflow Variable key.

    ``edgeimpulse_new_samples__<scope>__<conn>__<project>__<category>__<hash>``: the hash covers the
    filters, so watching other samples never reuses a watermark; ``scope`` keeps watchers apart (a sensor
    passes its DAG and task id, an asset watcher ``watcher``).
    """
    project = str(project_id) if project_id is not None else "auto"
    parts = [WATERMARK_KEY_PREFIX, scope, conn_id, project, sample_filter.category, sample_filter.digest()]
    key = "__".join(_KEY_UNSAFE.sub("-", part) for part in parts)
    if len(key) > _MAX_KEY_CHARS:
        # Keep it unique when long DAG/connection ids are cut: the tail is a hash of the whole key.
        key = key[: _MAX_KEY_CHARS - 13] + "_" + hashlib.sha256(key.encode()).hexdigest()[:12]
    return key


def parse_min_new_samples(value: Any) -> int:
    return validation.required_int("min_new_samples", value, minimum=1)


def parse_max_sample_ids(value: Any) -> int:
    return validation.required_int("max_sample_ids", value, minimum=0)


def parse_start_after(value: Any) -> int | None:
    return validation.optional_int("start_after_sample_id", value, minimum=0)
