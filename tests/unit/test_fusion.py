"""Fusion: a missing modality enters as absent (flag 0), never as a reassuring score."""

from __future__ import annotations

import math
from datetime import UTC, datetime

import orjson
import pytest

from models.fusion import FUSION_INPUTS, FusionModel, fusion_row, logit
from models.manifest import ModelManifest, install, sha256
from models.registry import ModelSlot


def stacker(coef: list[float], intercept: float) -> tuple[ModelManifest, bytes]:
    artifact = orjson.dumps({"coef": coef, "intercept": intercept})
    return (
        ModelManifest(
            name="fusion",
            version="fusion-test",
            created=datetime(2026, 11, 23, tzinfo=UTC),
            kind="logistic-stacker",
            artifact="fusion.json",
            artifact_sha256=sha256(artifact),
            feature_names=list(FUSION_INPUTS),
        ),
        artifact,
    )


def test_rows_flag_missing_modalities() -> None:
    assert fusion_row(0.2, None, None, 3) == [logit(0.2), 0.0, 0.0, 0.0, 0.0, 3.0]
    row = fusion_row(0.2, 0.9, 0.5, 3)
    assert row[1:5] == [pytest.approx(logit(0.9)), 1.0, 0.0, 1.0]


@pytest.mark.parametrize(("notes", "imaging"), [(None, None), (0.8, None), (None, 0.3), (0.8, 0.3)])
def test_fusion_with_one_two_or_three_modalities(tmp_path, notes, imaging) -> None:
    coef = [1.0, 0.8, -0.5, 0.6, 0.2, 0.1]
    install(tmp_path, *stacker(coef, -1.0))
    slot = ModelSlot(tmp_path, "fusion", FUSION_INPUTS, FusionModel.load, poll_s=0)
    slot.refresh()
    fused = slot.current.fuse(0.3, notes, imaging, 4)
    z = -1.0 + sum(c * x for c, x in zip(coef, fusion_row(0.3, notes, imaging, 4), strict=True))
    assert fused == pytest.approx(1 / (1 + math.exp(-z)))
    without_note = slot.current.fuse(0.3, None, imaging, 4)
    if notes is not None:  # a worrying note raises the risk over having no note at all
        assert fused > without_note


def test_logit_is_finite_at_the_edges() -> None:
    assert math.isfinite(logit(0.0)) and math.isfinite(logit(1.0))
