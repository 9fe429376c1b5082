"""The rolling features of a batch of patients, from the running window sums that
`lua/update_vitals.lua` keeps and returns (the `sums` layout of KEYS.md).

The script keeps, per window and vital, the count, the sums of offsets from an anchor
sample, the extremes and the anchor; the features are a few divisions and a square root
of those. Taken in the script, one value at a time in Lua, they were a sixth of its time
per call; here they are whole-array operations over every patient of a batch (written by
hand because the formulas are the script's own). Each is the same IEEE double arithmetic
in the same order as the script computed it before (layout 2.3), so the values are
unchanged; tests compare them with `features.reference`.
"""

from __future__ import annotations

import numpy as np

from features.windows import FEATURE_NAMES, STATS, VITALS, WINDOWS

_STATS_AT = 7
_FIELDS = 10
_AT_LATEST = _STATS_AT + len(WINDOWS) * len(VITALS) * _FIELDS
SUMS_SIZE = _AT_LATEST + len(VITALS) + 1
"""Doubles in `sums` (256): a format version, per window its samples and removals, per
window and vital 10 statistics, per vital the samples at its latest time, the `accepted`
counter."""


def features(sums: np.ndarray, latest: np.ndarray) -> np.ndarray:
    """Features in `FEATURE_NAMES` order (NaN where a window is empty), one row per patient,
    from each patient's `sums` (rows of `SUMS_SIZE`) and latest value of each vital (rows
    in `VITALS` order, NaN where none is kept)."""
    patients = len(sums)
    # per window and vital: n, sums of y, y², x, x², xy (offsets from the anchor), min, max,
    # the anchor's value and time; as (patient, vital, window)
    stats = sums[:, _STATS_AT:_AT_LATEST].reshape(patients, len(WINDOWS), len(VITALS), _FIELDS)
    n, sy, syy, sx, sxx, sxy, lo, hi, ky = np.moveaxis(stats.transpose(0, 2, 1, 3), 3, 0)[:9]
    at_latest = sums[:, _AT_LATEST : _AT_LATEST + len(VITALS), None]
    empty, same = n == 0, lo == hi
    with np.errstate(divide="ignore", invalid="ignore"):
        my = sy / n
        var = np.maximum(syy / n - my * my, 0.0)
        slope = (sxy - sx * sy / n) / (sxx - sx * sx / n)
    out = np.empty((patients, len(VITALS), len(WINDOWS), len(STATS)))
    out[..., 0] = latest[:, :, None]
    # every sample the same value: exact, whatever rounding the sums carry
    out[..., 1] = np.where(same, lo, ky + my)
    out[..., 2] = lo
    out[..., 3] = hi
    out[..., 4] = np.where(same, 0.0, np.sqrt(var))
    # fewer than 2 samples, or all at one time (the latest): no slope
    out[..., 6] = np.where((n < 2) | (n == at_latest), np.nan, np.where(same, 0.0, slope))
    out[empty] = np.nan  # an empty window: every statistic null but its count, 0
    out[..., 5] = n
    return out.reshape(patients, len(FEATURE_NAMES))
