"""Sample files in Edge Impulse's data acquisition format, for uploads in tests, demos and benchmarks."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

AXES = ("accX", "accY", "accZ")


def acquisition_sample(values: Sequence[Sequence[float]], *, device_type: str = "EMULATOR") -> dict[str, Any]:
    """One unsigned accelerometer recording (``values``: rows of x, y, z at 16 ms) as the ingestion service takes it."""
    return {
        "protected": {"ver": "v1", "alg": "none"},
        "signature": "0" * 64,
        "payload": {
            "device_type": device_type,
            "interval_ms": 16,
            "sensors": [{"name": axis, "units": "m/s2"} for axis in AXES],
            "values": [list(row) for row in values],
        },
    }


def write_wave_samples(folder: Path, count: int, *, tag: str, device_type: str, rows: int = 50) -> list[Path]:
    """``count`` distinct recordings named ``wave.<tag><n>.json``: the ingestion service labels them ``wave``."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for n in range(count):
        values = [[round(0.1 * i * (n + 1), 3), 0.0, 9.81] for i in range(rows)]
        path = folder / f"wave.{tag}{n}.json"
        path.write_text(json.dumps(acquisition_sample(values, device_type=device_type)))
        paths.append(path)
    return paths
