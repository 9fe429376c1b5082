"""Fusion of the modality scores into one calibrated risk: a logistic stacker.

Inputs are the log-odds of each modality, and for each optional one (notes, imaging) a
presence flag, its recency and its log-odds weighted by recency, then the NEWS2 total.
A missing modality enters as log-odds 0 with its flag and recency 0, so the stacker learns
its own intercept for "no note yet" from patients who had none, instead of treating a
missing note as a reassuring one (no bias from absence). Why recency: a patient's latest
note or film stays in Redis until a newer one comes, and a note from this morning says
more about tonight than one from three days ago; a film taken in the last hours also says
that someone was worried enough to order it. Recency is exp(-age / half-life-ish scale),
with the age measured from the patient's latest vitals observation (or the item itself if
newer), so that training rows and the worker see the same number.

Until a stacker is trained, `PASSTHROUGH` uses the vitals score alone.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import orjson
from scipy.special import expit

from models.manifest import ModelManifest

FUSION_INPUTS: tuple[str, ...] = (
    "logit_vitals",
    "logit_notes",
    "has_notes",
    "recent_notes",
    "logit_notes_recent",
    "logit_imaging",
    "has_imaging",
    "recent_imaging",
    "logit_imaging_recent",
    "news2_total",
)
RECENCY_H = {"notes": 6.0, "imaging": 24.0}
"""Scale of each modality's recency, exp(-age_h / scale): notes come every shift, films
every day or two. Set before looking at any evaluation cohort, not tuned."""
PASSTHROUGH = "passthrough-1"
_EPS = 1e-6


def logit(p: np.ndarray | float) -> np.ndarray:
    p = np.clip(np.asarray(p, dtype=np.float64), _EPS, 1 - _EPS)
    return np.log(p / (1 - p))


def _optional(score: np.ndarray, age_h: np.ndarray, scale_h: float) -> list[np.ndarray]:
    has = ~np.isnan(score)
    log_odds = np.where(has, logit(np.nan_to_num(score)), 0.0)
    recent = np.where(has, np.exp(-np.nan_to_num(age_h) / scale_h), 0.0)
    return [log_odds, has.astype(np.float64), recent, log_odds * recent]


def fusion_matrix(
    vitals: np.ndarray,
    notes: np.ndarray,
    notes_at_us: np.ndarray,
    imaging: np.ndarray,
    imaging_at_us: np.ndarray,
    news2_total: np.ndarray,
    as_of_us: np.ndarray,
) -> np.ndarray:
    """float64 [rows, FUSION_INPUTS]. NaN in `notes` or `imaging` means "none yet"; their
    times are when the newest one was written or acquired, and ages run to the newest of
    the patient's latest vitals (`as_of_us`) and those times. The worker (one row per
    patient) and training (every check of a cohort) both build their inputs here, so they
    cannot drift apart."""
    notes, imaging = np.asarray(notes, dtype=np.float64), np.asarray(imaging, dtype=np.float64)
    notes_at = np.asarray(notes_at_us, dtype=np.float64)
    imaging_at = np.asarray(imaging_at_us, dtype=np.float64)
    now = np.fmax(np.fmax(np.asarray(as_of_us, dtype=np.float64), notes_at), imaging_at)
    return np.column_stack(
        [
            logit(vitals),
            *_optional(notes, (now - notes_at) / 3.6e9, RECENCY_H["notes"]),
            *_optional(imaging, (now - imaging_at) / 3.6e9, RECENCY_H["imaging"]),
            np.asarray(news2_total, dtype=np.float64),
        ]
    )


Timed = tuple[float, int]
"""(score, time in µs since the epoch) of a patient's newest note or film."""


def fusion_rows(
    vitals: Sequence[float],
    notes: Sequence[Timed | None],
    imaging: Sequence[Timed | None],
    news2_total: Sequence[int],
    as_of_us: Sequence[int],
) -> np.ndarray:
    """The worker's patients as rows of `fusion_matrix`, one per patient; `None` for a
    modality with no score yet."""
    nan = (np.nan, np.nan)
    note, note_at = np.array([n or nan for n in notes], dtype=np.float64).reshape(-1, 2).T
    image, image_at = np.array([i or nan for i in imaging], dtype=np.float64).reshape(-1, 2).T
    return fusion_matrix(
        np.asarray(vitals, dtype=np.float64), note, note_at, image, image_at,
        np.asarray(news2_total, dtype=np.float64), np.asarray(as_of_us, dtype=np.float64),
    )  # fmt: skip


def fusion_row(
    vitals: float,
    notes: Timed | None,
    imaging: Timed | None,
    news2_total: int,
    as_of_us: int,
) -> np.ndarray:
    """One patient's inputs (see `fusion_rows`)."""
    return fusion_rows([vitals], [notes], [imaging], [news2_total], [as_of_us])[0]


def stacked(x: np.ndarray, coef: np.ndarray | list[float], intercept: float) -> np.ndarray:
    """Probabilities of rows of `fusion_matrix` under one set of stacker weights."""
    return expit(intercept + x @ np.asarray(coef, dtype=np.float64))


class FusionModel:
    """Coefficients in FUSION_INPUTS order plus an intercept, stored as JSON."""

    def __init__(self, manifest: ModelManifest, coef: list[float], intercept: float) -> None:
        if len(coef) != len(FUSION_INPUTS):
            raise ValueError(f"{len(coef)} coefficients for {len(FUSION_INPUTS)} inputs")
        self.manifest = manifest
        self.coef = np.array(coef, dtype=np.float64)
        self.intercept = intercept

    @property
    def version(self) -> str:
        return self.manifest.version

    @classmethod
    def load(cls, directory: Path, manifest: ModelManifest) -> FusionModel:
        trained_with = manifest.preprocessing.get("recency_h")
        if trained_with != RECENCY_H:
            raise ValueError(
                f"trained with recency scales {trained_with}, this code has {RECENCY_H}"
            )
        raw = orjson.loads((directory / manifest.artifact).read_bytes())
        return cls(manifest, [float(c) for c in raw["coef"]], float(raw["intercept"]))

    def probabilities(self, x: np.ndarray) -> np.ndarray:
        """Fused probabilities of rows of `fusion_matrix`."""
        return stacked(x, self.coef, self.intercept)

    def fuse(
        self,
        vitals: float,
        notes: Timed | None,
        imaging: Timed | None,
        news2_total: int,
        as_of_us: int,
    ) -> float:
        """One patient's fused probability; arguments as in `fusion_row`."""
        row = fusion_row(vitals, notes, imaging, news2_total, as_of_us)
        return float(self.probabilities(row[None])[0])
