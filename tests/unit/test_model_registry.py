"""The model registry: newest valid model wins, a mismatching one is refused and the model
in use stays; explanations are XGBoost's own SHAP values and sum to the margin."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
import xgboost as xgb

from features.news2 import News2Inputs
from features.windows import FEATURE_NAMES
from models.manifest import install
from models.registry import ModelSlot
from models.vitals_model import MODEL_FEATURES, VitalsModel, design_matrix
from tests.modelkit import tiny_model


def slot(model_dir: Path) -> ModelSlot[VitalsModel]:
    return ModelSlot(model_dir, "vitals", MODEL_FEATURES, VitalsModel.load, poll_s=0)


def test_newest_valid_model_is_loaded_and_swapped_in(tmp_path) -> None:
    registry = slot(tmp_path)
    assert not registry.refresh() and registry.current is None
    install(tmp_path, *tiny_model(1))
    install(tmp_path, *tiny_model(2))
    assert registry.refresh()
    assert registry.current is not None and registry.current.version == "test-2"
    install(tmp_path, *tiny_model(3))
    assert registry.refresh()
    assert registry.current.version == "test-3"
    assert not registry.refresh()


def test_model_with_other_feature_names_is_refused_and_old_one_kept(tmp_path, caplog) -> None:
    registry = slot(tmp_path)
    install(tmp_path, *tiny_model(1))
    registry.refresh()
    renamed = list(MODEL_FEATURES)
    renamed[3] = "hr_median_1h"
    install(tmp_path, *tiny_model(2, features=renamed))
    with caplog.at_level(logging.ERROR, logger="models.registry"):
        assert not registry.refresh()
        assert not registry.refresh()  # refused once, not re-read and re-logged every poll
    assert registry.current.version == "test-1"
    refusals = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert len(refusals) == 1
    assert "refusing vitals model test-2" in refusals[0]
    assert "'hr_median_1h'" in refusals[0] and "keeping test-1" in refusals[0]


def test_tampered_artifact_is_refused(tmp_path, caplog) -> None:
    manifest, artifact = tiny_model(1)
    target = install(tmp_path, manifest, artifact)
    (target / "model.ubj").write_bytes(artifact[:-10])
    registry = slot(tmp_path)
    with caplog.at_level(logging.ERROR, logger="models.registry"):
        registry.refresh()
    assert registry.current is None
    assert "does not match the manifest's sha256" in caplog.text


def test_install_is_atomic_and_versions_are_immutable(tmp_path) -> None:
    manifest, artifact = tiny_model(1)
    install(tmp_path, manifest, artifact)
    with pytest.raises(FileExistsError):
        install(tmp_path, manifest, artifact)
    assert [p.name for p in (tmp_path / "vitals").iterdir()] == ["test-1"]


def test_contributions_with_bias_sum_to_the_margin_and_top5_are_the_largest(tmp_path) -> None:
    install(tmp_path, *tiny_model(4))
    registry = slot(tmp_path)
    registry.refresh()
    model = registry.current
    rng = np.random.default_rng(0)
    rolling = rng.normal(size=(20, len(FEATURE_NAMES)))
    news = [News2Inputs(respiratory_rate=22.0, consciousness="V")] * 10 + [None] * 10
    x = design_matrix(rolling, news)
    shap = model.contributions(x)
    matrix = xgb.DMatrix(x, missing=np.nan, feature_names=list(MODEL_FEATURES))
    margin = model.booster.predict(matrix, output_margin=True)
    np.testing.assert_allclose(shap.sum(axis=1), margin, rtol=1e-5, atol=1e-5)
    predictions = model.predict(x, news)
    for row, p in enumerate(predictions):
        assert p.margin == pytest.approx(float(margin[row]), abs=1e-5)
        assert p.probability == pytest.approx(1 / (1 + np.exp(-margin[row])), abs=1e-5)
        top = sorted(np.abs(shap[row, :-1]), reverse=True)[:5]
        assert [abs(c.contribution) for c in p.contributors] == pytest.approx(top, abs=1e-4)
    consciousness = [c for p in predictions[:10] for c in p.contributors]
    assert all(c.value == "V" for c in consciousness if c.feature == "news2_consciousness")


def test_the_workers_design_matrix_with_its_news2_totals_is_trainings() -> None:
    """The worker hands `design_matrix` the NEWS2 totals it scored; training computes them
    there: the rows must be the same, or serving would skew from training."""
    from features.news2 import news2

    rng = np.random.default_rng(1)
    rolling = rng.normal(size=(4, len(FEATURE_NAMES)))
    news = [
        News2Inputs(respiratory_rate=26.0, spo2=91.0, supplemental_o2=True, heart_rate=131.0),
        News2Inputs(consciousness="P", temperature=38.6, spo2_scale=2, spo2=87.0),
        News2Inputs(),
        None,
    ]
    totals = [news2(n).total if n is not None else 0 for n in news]
    served, trained = design_matrix(rolling, news, totals), design_matrix(rolling, news)
    np.testing.assert_array_equal(served, trained)
    assert served[0, MODEL_FEATURES.index("news2_total")] == totals[0] > 0
