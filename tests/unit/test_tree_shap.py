"""The tabulated TreeSHAP of models/tree_shap.py gives XGBoost's own values."""

from __future__ import annotations

import numpy as np
import pytest
import xgboost as xgb

from models.tree_shap import ShapTables


def _data(rows: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Features with missing values, repeated values (ties at thresholds) and a label."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(rows, 12))
    x[:, 3] = rng.integers(0, 4, size=rows)  # few distinct values: rows on the thresholds
    x[rng.random(x.shape) < 0.2] = np.nan
    signal = np.nan_to_num(x[:, 0]) + np.nan_to_num(x[:, 1]) * np.nan_to_num(x[:, 3])
    y = (signal + rng.normal(size=rows) > 0.5).astype(float)
    return x, y


def _booster(depth: int, rounds: int, seed: int = 0) -> xgb.Booster:
    x, y = _data(2000, seed)
    params = {"objective": "binary:logistic", "max_depth": depth, "eta": 0.3, "seed": seed}
    names = [f"f{i}" for i in range(x.shape[1])]
    train = xgb.DMatrix(x, label=y, missing=np.nan, feature_names=names)
    return xgb.train(params, train, num_boost_round=rounds)


def _xgboost_shap(booster: xgb.Booster, x: np.ndarray) -> np.ndarray:
    matrix = xgb.DMatrix(x, missing=np.nan, feature_names=booster.feature_names)
    return booster.predict(matrix, pred_contribs=True)


@pytest.mark.parametrize("depth", [1, 2, 3])
def test_tables_give_xgboosts_own_shap_values(depth: int) -> None:
    booster = _booster(depth, rounds=40)
    tables = ShapTables.build(booster, 12)
    assert tables is not None
    x, _ = _data(700, seed=1)  # more than CHUNK_ROWS
    x[:5, 3] = [0.0, 1.0, 2.0, 3.0, np.nan]
    x[5] = np.nan  # a row with nothing known
    got = tables.contributions(x)
    want = _xgboost_shap(booster, x)
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-5)
    assert np.count_nonzero(np.abs(want[:, :-1]) > 1e-3) > x.shape[0]  # not all zeros


def test_rows_exactly_on_a_threshold_go_the_way_xgboost_sends_them() -> None:
    booster = _booster(3, rounds=20)
    tables = ShapTables.build(booster, 12)
    assert tables is not None
    x = np.full((len(tables.node_threshold), 12), np.nan)
    x[np.arange(len(x)), tables.node_feature] = tables.node_threshold
    np.testing.assert_allclose(tables.contributions(x), _xgboost_shap(booster, x), atol=1e-5)


def test_trees_too_deep_for_tables_are_left_to_xgboost() -> None:
    assert ShapTables.build(_booster(6, rounds=5), 12) is None


def test_no_rows_and_a_model_of_lone_leaves() -> None:
    booster = _booster(3, rounds=5)
    tables = ShapTables.build(booster, 12)
    assert tables is not None
    assert tables.contributions(np.empty((0, 12))).shape == (0, 13)
    x, y = _data(50, seed=2)
    flat = xgb.train(
        {"objective": "binary:logistic", "max_depth": 3, "min_child_weight": 1e9},
        xgb.DMatrix(x, label=y, missing=np.nan),
        num_boost_round=3,
    )
    leaves = ShapTables.build(flat, 12)
    assert leaves is not None
    np.testing.assert_allclose(leaves.contributions(x), _xgboost_shap(flat, x), atol=1e-6)
