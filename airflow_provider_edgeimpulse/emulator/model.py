"""
The trained model's character: how well it classifies and how big and fast it is on each device.

Model testing, the per-variant metrics and the Keras block's metadata all read the project's current
:class:`ModelProfile`, so they agree with each other. A test sets the profile the next training job will
produce through ``POST /_emulator/next-model``, to make a retrain worse (overall, on one label, on one
variant) or bigger and slower.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Any

# Quantisation costs the int8 variant a little accuracy, as on Studio.
VARIANT_ACCURACY_OFFSET = {"int8": 0.01, "float32": 0.0}

# (mcu, name, isDefault, latency ms of int8, latency ms of float32): a few of Studio's profiling targets.
DEVICES = (
    ("cortex-m4f-80mhz", "Cortex-M4F 80MHz", True, 6.0, 21.0),
    ("cortex-m7-216mhz", "Cortex-M7 216MHz", False, 2.0, 7.0),
    ("raspberry-pi-4", "Raspberry Pi 4", False, 1.0, 1.0),
)
# variant -> engine -> (RAM, ROM) in bytes, for the seeded model.
MEMORY = {
    "int8": {"tflite": (6_912, 36_320), "eon": (4_812, 27_904), "eon_ram_optimized": (4_096, 28_112)},
    "float32": {"tflite": (10_240, 61_552), "eon": (7_424, 47_000), "eon_ram_optimized": (6_656, 47_360)},
}
_PROFILE_KEYS = ("miss_every", "wrong_labels", "variant_accuracy_drop", "size_factor", "latency_factor")


@dataclass(frozen=True)
class ModelProfile:
    # Every sample whose id is a multiple of this is misclassified (5: the seeded test set scores 5 of 6).
    miss_every: int = 5
    # Every test sample of these labels is misclassified.
    wrong_labels: tuple[str, ...] = ()
    # Accuracy a variant loses on top of VARIANT_ACCURACY_OFFSET.
    variant_accuracy_drop: dict[str, float] = field(default_factory=dict)
    size_factor: float = 1.0  # RAM and ROM
    latency_factor: float = 1.0

    def misclassifies(self, sample_id: int, label: str) -> bool:
        return label in self.wrong_labels or sample_id % self.miss_every == 0

    def variant_accuracy(self, accuracy: float, variant: str) -> float:
        lost = VARIANT_ACCURACY_OFFSET.get(variant, 0.0) + self.variant_accuracy_drop.get(variant, 0.0)
        return round(max(0.0, accuracy - lost), 4)

    def on_device_performance(self, variant: str) -> list[dict[str, Any]]:
        def memory(engine: str) -> dict[str, int]:
            ram, rom = (math.ceil(n * self.size_factor) for n in MEMORY[variant][engine])
            return {"ramRequired": ram, "romRequired": rom, "arenaSize": ram - 512, "modelSize": rom - 8_000}

        return [
            {
                "mcu": mcu,
                "name": name,
                "isDefault": default,
                "latency": round((int8_ms if variant == "int8" else float32_ms) * self.latency_factor, 3),
                "tflite": memory("tflite"),
                "eon": memory("eon"),
                "eon_ram_optimized": memory("eon_ram_optimized"),
                "hasPerformance": True,
            }
            for mcu, name, default, int8_ms, float32_ms in DEVICES
        ]


def profile_from(body: dict[str, Any]) -> ModelProfile:
    """The profile a control call asks for (defaults for what it leaves out); ValueError names a bad key."""
    unknown = sorted(set(body) - set(_PROFILE_KEYS))
    if unknown:
        raise ValueError(f"unknown model key(s) {unknown}; known: {list(_PROFILE_KEYS)}")
    profile = ModelProfile()
    if "miss_every" in body:
        value = body["miss_every"]
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError("'miss_every' must be a positive integer")
        profile = replace(profile, miss_every=value)
    if "wrong_labels" in body:
        labels = body["wrong_labels"]
        if not isinstance(labels, list) or not all(isinstance(x, str) for x in labels):
            raise ValueError("'wrong_labels' must be a list of labels")
        profile = replace(profile, wrong_labels=tuple(labels))
    if "variant_accuracy_drop" in body:
        drops = body["variant_accuracy_drop"]
        if not isinstance(drops, dict) or not all(
            v in VARIANT_ACCURACY_OFFSET and _fraction(d) for v, d in drops.items()
        ):
            raise ValueError(f"'variant_accuracy_drop' maps some of {list(VARIANT_ACCURACY_OFFSET)} to 0..1")
        profile = replace(profile, variant_accuracy_drop={str(v): float(d) for v, d in drops.items()})
    return replace(profile, size_factor=_factor(body, "size_factor"), latency_factor=_factor(body, "latency_factor"))


def _factor(body: dict[str, Any], key: str) -> float:
    value = body.get(key, 1.0)
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value <= 1000:
        raise ValueError(f"'{key}' must be a number above 0 and at most 1000")
    return float(value)


def profile_json(profile: ModelProfile) -> dict[str, Any]:
    return {
        "miss_every": profile.miss_every,
        "wrong_labels": list(profile.wrong_labels),
        "variant_accuracy_drop": dict(profile.variant_accuracy_drop),
        "size_factor": profile.size_factor,
        "latency_factor": profile.latency_factor,
    }


def _fraction(value: Any) -> bool:
    return not isinstance(value, bool) and isinstance(value, int | float) and 0 <= value <= 1
