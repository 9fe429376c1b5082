"""XGBoost's own TreeSHAP values, tabulated per tree at load and looked up per row.

Why by hand: XGBoost's CPU TreeSHAP (`pred_contribs`) was the largest single cost of a
score in the worker: about 80 µs per row for the vitals model (134 trees of depth 3) in
big batches and 0.7 ms for one row (BENCHMARKS.md), against under 10 µs here. No library
serves exact XGBoost SHAP values faster on a CPU.

Why it is exact: path-dependent TreeSHAP of one tree depends on a row only through the
row's direction at each of that tree's splits (left or right, or the default for a
missing value), and a tree of depth 3 has at most 7 splits, so at most 128 patterns. At
load, one synthetic row per reachable pattern goes through `pred_contribs` of that tree
alone; at run time a row's contributions are its patterns' table entries summed over
the trees, and the bias is the same constant for every row. The values equal XGBoost's
to float32 rounding (tests/unit/test_tree_shap.py). Models whose trees have too many
splits for tables, or categorical splits, get `None` from `build` and go on with
`pred_contribs`.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np
import orjson
import xgboost as xgb

MAX_SPLITS = 10
"""Splits per tree at most (a table of 2**splits patterns per tree)."""
MAX_PROBES = 1 << 14
"""Synthetic rows per tree at most (every combination of its features' intervals)."""
CHUNK_ROWS = 256
"""Rows per lookup: bigger batches spill the gathered table entries out of the CPU's cache
(measured: 7 µs per row up to 256 rows, 19 µs at 512)."""


def _matrix(x: np.ndarray) -> xgb.DMatrix:
    return xgb.DMatrix(x, missing=np.nan, nthread=1)


def _probes(features: np.ndarray, thresholds: np.ndarray, n_features: int) -> np.ndarray | None:
    """Rows that between them take every direction combination a real row can take at
    these splits: per feature, missing, below its lowest threshold and at each threshold
    (XGBoost goes left when value < threshold); other features missing."""
    used = np.unique(features)
    choices = []
    for f in used:
        cuts = np.unique(thresholds[features == f])
        below = np.nextafter(cuts[0], np.float32(-np.inf))
        choices.append([np.nan, float(below), *map(float, cuts)])
    if np.prod([len(c) for c in choices], dtype=np.float64) > MAX_PROBES:
        return None
    combos = np.array(list(itertools.product(*choices)), dtype=np.float64)
    rows = np.full((len(combos), n_features), np.nan)
    rows[:, used] = combos
    return rows


@dataclass(frozen=True)
class ShapTables:
    node_feature: np.ndarray
    """Every split of every tabulated tree, trees one after the other."""
    node_threshold: np.ndarray
    node_default_left: np.ndarray
    node_bit: np.ndarray
    """2**(the split's index within its tree)."""
    tree_start: np.ndarray
    """Index of each tree's first split."""
    table: np.ndarray
    """[tree, pattern, slot]: the tree's SHAP value for each of its features (slots)."""
    slot_feature: np.ndarray
    """[tree, slot]: the feature of each slot; unused slots point at the bias column."""
    bias: float
    n_features: int

    @classmethod
    def build(cls, booster: xgb.Booster, n_features: int) -> ShapTables | None:
        """Tables for `booster`, or None where they would be too big or inexact."""
        booster = booster.copy()
        booster.feature_names = None  # checking names on each of the slices' matrices
        booster.feature_types = None  # took a third of the build time
        model = orjson.loads(booster.save_raw(raw_format="json"))
        trees = model["learner"]["gradient_booster"]["model"]["trees"]
        if len(trees) != booster.num_boosted_rounds():  # one tree per round only
            return None
        feature, threshold, default_left, bit, start = [], [], [], [], []
        tables, slots = [], []
        for t, tree in enumerate(trees):
            if any(tree.get("split_type", [])):  # categorical splits
                return None
            splits = np.flatnonzero(np.array(tree["left_children"]) != -1)
            if len(splits) > MAX_SPLITS:
                return None
            if len(splits) == 0:  # a lone leaf adds to the bias only
                continue
            f = np.array(tree["split_indices"])[splits]
            c = np.array(tree["split_conditions"], dtype=np.float32)[splits]
            d = np.array(tree["default_left"], dtype=bool)[splits]
            probes = _probes(f, c, n_features)
            if probes is None:
                return None
            goes = np.where(np.isnan(probes[:, f]), d, probes[:, f].astype(np.float32) < c)
            codes, first = np.unique(goes @ (1 << np.arange(len(splits))), return_index=True)
            one = booster[t : t + 1]
            one.set_param({"nthread": 1})
            values = one.predict(_matrix(probes[first]), pred_contribs=True)
            used = np.unique(f)
            table = np.zeros((1 << len(splits), len(used)))
            table[codes] = values[:, used]
            start.append(len(feature))
            feature.extend(f)
            threshold.extend(c)
            default_left.extend(d)
            bit.extend(1 << np.arange(len(splits)))
            tables.append(table)
            slots.append(used)
        patterns = max((t.shape[0] for t in tables), default=1)
        width = max((len(s) for s in slots), default=1)
        table = np.zeros((len(tables), patterns, width))
        slot_feature = np.full((len(tables), width), n_features)
        for i, (t, s) in enumerate(zip(tables, slots, strict=True)):
            table[i, : t.shape[0], : t.shape[1]] = t
            slot_feature[i, : len(s)] = s
        nothing = _matrix(np.full((1, n_features), np.nan))
        bias = booster.predict(nothing, pred_contribs=True)
        return cls(
            node_feature=np.array(feature, dtype=np.intp),
            node_threshold=np.array(threshold, dtype=np.float32),
            node_default_left=np.array(default_left, dtype=bool),
            node_bit=np.array(bit, dtype=np.int64),
            tree_start=np.array(start, dtype=np.intp),
            table=table,
            slot_feature=slot_feature,
            bias=float(bias[0, -1]),
            n_features=n_features,
        )

    def contributions(self, x: np.ndarray) -> np.ndarray:
        """float64 [rows, features + 1], as `pred_contribs` gives (the bias last)."""
        if len(x) > CHUNK_ROWS:
            return np.vstack(
                [self.contributions(x[i : i + CHUNK_ROWS]) for i in range(0, len(x), CHUNK_ROWS)]
            )
        n, width = len(x), self.n_features + 1
        out = np.zeros((n, width))
        if len(self.tree_start) and n:
            values = np.asarray(x, dtype=np.float32)[:, self.node_feature]
            goes = np.where(np.isnan(values), self.node_default_left, values < self.node_threshold)
            codes = np.add.reduceat(goes * self.node_bit, self.tree_start, axis=1)
            picked = self.table[np.arange(len(self.tree_start)), codes]
            cells = np.arange(n)[:, None, None] * width + self.slot_feature
            out = np.bincount(cells.ravel(), weights=picked.ravel(), minlength=n * width)
            out = out.reshape(n, width)
        out[:, -1] = self.bias
        return out
