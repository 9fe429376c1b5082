"""Fusion: a missing modality enters as absent (flag 0), never as a reassuring score, and
an old note or film counts less than a fresh one."""

from __future__ import annotations

import math

import numpy as np
import pytest

from models.fusion import (
    FUSION_INPUTS,
    RECENCY_H,
    FusionModel,
    fusion_matrix,
    fusion_row,
    fusion_rows,
    logit,
)
from models.manifest import install
from models.registry import ModelSlot
from tests.modelkit import FUSION_COEF, tiny_fusion_model

HOUR_US = 3_600_000_000
NOW = 1_700_000_000 * 1_000_000


def loaded(tmp_path, coef: list[float], intercept: float, recency: dict | None = None):
    install(tmp_path, *tiny_fusion_model(coef, intercept, recency))
    slot = ModelSlot(tmp_path, "fusion", FUSION_INPUTS, FusionModel.load, poll_s=0)
    slot.refresh()
    return slot.current


def named(row: np.ndarray) -> dict[str, float]:
    return dict(zip(FUSION_INPUTS, row.tolist(), strict=True))


def test_rows_flag_missing_modalities() -> None:
    row = fusion_row(0.2, None, None, 3, NOW)
    assert row.tolist() == [logit(0.2), 0, 0, 0, 0, 0, 0, 0, 0, 3.0]


def test_recency_decays_with_the_age_of_the_note_and_film() -> None:
    fresh = named(fusion_row(0.2, (0.9, NOW), (0.5, NOW), 3, NOW))
    assert fresh["has_notes"] == fresh["recent_notes"] == 1.0
    assert fresh["logit_notes_recent"] == pytest.approx(logit(0.9))
    assert fresh["recent_imaging"] == 1.0 and fresh["logit_imaging"] == pytest.approx(0.0)
    note_at, film_at = NOW - 6 * HOUR_US, NOW - 48 * HOUR_US
    old = named(fusion_row(0.2, (0.9, note_at), (0.7, film_at), 3, NOW))
    assert old["recent_notes"] == pytest.approx(math.exp(-6 / RECENCY_H["notes"]))
    assert old["recent_imaging"] == pytest.approx(math.exp(-48 / RECENCY_H["imaging"]))
    assert old["logit_imaging_recent"] == pytest.approx(logit(0.7) * old["recent_imaging"])


def test_age_runs_to_the_newest_of_vitals_note_and_film() -> None:
    """A note newer than the latest vitals (a notes-triggered re-score) is fresh, not from
    the future."""
    assert named(fusion_row(0.2, (0.9, NOW + HOUR_US), None, 3, NOW))["recent_notes"] == 1.0


def test_matrix_rows_are_the_rows_the_worker_builds() -> None:
    vitals, notes, imaging = [0.1, 0.5, 0.9], [np.nan, 0.7, 0.2], [0.4, np.nan, 0.99]
    notes_at = [np.nan, NOW - HOUR_US, NOW - 2 * HOUR_US]
    imaging_at = [NOW - 30 * HOUR_US, np.nan, NOW + HOUR_US]
    totals = [0, 5, 9]
    x = fusion_matrix(vitals, notes, notes_at, imaging, imaging_at, totals, [NOW] * 3)
    timed = [
        (
            None if np.isnan(notes[i]) else (notes[i], int(notes_at[i])),
            None if np.isnan(imaging[i]) else (imaging[i], int(imaging_at[i])),
        )
        for i in range(3)
    ]
    for i, (note, image) in enumerate(timed):
        assert x[i].tolist() == fusion_row(vitals[i], note, image, totals[i], NOW).tolist()
    # the worker's whole batch at once
    many = fusion_rows(vitals, [n for n, _ in timed], [i for _, i in timed], totals, [NOW] * 3)
    assert many.tolist() == x.tolist()


@pytest.mark.parametrize(
    ("notes", "imaging"),
    [(None, None), ((0.8, NOW), None), (None, (0.3, NOW)), ((0.8, NOW), (0.3, NOW))],
)
def test_fusion_with_one_two_or_three_modalities(tmp_path, notes, imaging) -> None:
    model = loaded(tmp_path, FUSION_COEF, -1.0)
    fused = model.fuse(0.3, notes, imaging, 4, NOW)
    z = -1.0 + float(np.dot(FUSION_COEF, fusion_row(0.3, notes, imaging, 4, NOW)))
    assert fused == pytest.approx(1 / (1 + math.exp(-z)))
    if notes is not None:  # a worrying note raises the risk over having no note at all
        assert fused > model.fuse(0.3, None, imaging, 4, NOW)


def test_a_stacker_trained_with_other_recency_scales_is_refused(tmp_path) -> None:
    assert loaded(tmp_path, FUSION_COEF, -1.0, recency={"notes": 12.0, "imaging": 24.0}) is None


def test_logit_is_finite_at_the_edges() -> None:
    assert np.isfinite(logit(0.0)) and np.isfinite(logit(1.0))
