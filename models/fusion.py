"""Fusion of the modality scores into one calibrated risk: a logistic stacker.

Inputs are the log-odds of each modality with a presence flag per optional modality
(notes, imaging) and the NEWS2 total. A missing modality enters as log-odds 0 with its
flag 0, so the stacker learns its own intercept for "no note yet" from patients who had
none, instead of treating a missing note as a reassuring one (no bias from absence).
Until a stacker is trained, `PASSTHROUGH` uses the vitals score alone.
"""

from __future__ import annotations

import math
from pathlib import Path

import orjson

from models.manifest import ModelManifest

FUSION_INPUTS: tuple[str, ...] = (
    "logit_vitals",
    "logit_notes",
    "has_notes",
    "logit_imaging",
    "has_imaging",
    "news2_total",
)
PASSTHROUGH = "passthrough-1"
_EPS = 1e-6


def logit(p: float) -> float:
    p = min(1 - _EPS, max(_EPS, p))
    return math.log(p / (1 - p))


def fusion_row(
    vitals: float, notes: float | None, imaging: float | None, news2_total: int
) -> list[float]:
    return [
        logit(vitals),
        logit(notes) if notes is not None else 0.0,
        1.0 if notes is not None else 0.0,
        logit(imaging) if imaging is not None else 0.0,
        1.0 if imaging is not None else 0.0,
        float(news2_total),
    ]


class FusionModel:
    """Coefficients in FUSION_INPUTS order plus an intercept, stored as JSON."""

    def __init__(self, manifest: ModelManifest, coef: list[float], intercept: float) -> None:
        if len(coef) != len(FUSION_INPUTS):
            raise ValueError(f"{len(coef)} coefficients for {len(FUSION_INPUTS)} inputs")
        self.manifest = manifest
        self.coef = coef
        self.intercept = intercept

    @property
    def version(self) -> str:
        return self.manifest.version

    @classmethod
    def load(cls, directory: Path, manifest: ModelManifest) -> FusionModel:
        raw = orjson.loads((directory / manifest.artifact).read_bytes())
        return cls(manifest, [float(c) for c in raw["coef"]], float(raw["intercept"]))

    def fuse(
        self, vitals: float, notes: float | None, imaging: float | None, news2_total: int
    ) -> float:
        row = fusion_row(vitals, notes, imaging, news2_total)
        z = self.intercept + sum(c * x for c, x in zip(self.coef, row, strict=True))
        return 1.0 / (1.0 + math.exp(-z))
