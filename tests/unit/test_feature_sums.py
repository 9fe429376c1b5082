"""`features.sums.features`: the rolling features from the window sums the feature script
returns (KEYS.md, `sums`), for a whole batch of patients at once. The Redis feature store
is compared with the reference recomputation in tests/integration/test_feature_store.py;
these are the cases by hand."""

from __future__ import annotations

import math

import numpy as np

from features import sums
from features.windows import FEATURE_NAMES, VITALS, WINDOWS

HOUR = 1.0


def _row(stats: dict[tuple[str, str], dict[str, float]], at_latest: dict[str, int]) -> np.ndarray:
    """A `sums` row with the given (window, vital) statistics, others empty."""
    row = np.zeros(sums.SUMS_SIZE)
    for (window, vital), s in stats.items():
        w = [name for name, _ in WINDOWS].index(window)
        v = VITALS.index(vital)
        at = 7 + (w * len(VITALS) + v) * 10
        row[at : at + 10] = [
            s[k] for k in ("n", "sy", "syy", "sx", "sxx", "sxy", "lo", "hi", "ky")
        ] + [0]
    for vital, n in at_latest.items():
        row[7 + len(WINDOWS) * len(VITALS) * 10 + VITALS.index(vital)] = n
    return row


def _offsets(values: list[float], hours: list[float]) -> dict[str, float]:
    """The script's statistics of samples, as offsets from the first (its anchor)."""
    y = np.array(values) - values[0]
    x = (np.array(hours) - hours[0]) / HOUR
    return {
        "n": len(values), "sy": y.sum(), "syy": (y * y).sum(), "sx": x.sum(), "sxx": (x * x).sum(),
        "sxy": (x * y).sum(), "lo": min(values), "hi": max(values), "ky": values[0],
    }  # fmt: skip


def test_features_of_a_batch_follow_the_contracts_statistics() -> None:
    latest = np.full((2, len(VITALS)), np.nan)
    latest[0, VITALS.index("hr")] = 100.0
    latest[1, VITALS.index("rr")] = 18.0
    rows = np.vstack(
        [
            # a rising heart rate over 2 hours; the 1 h window holds its last two samples
            _row(
                {
                    ("6h", "hr"): _offsets([80.0, 90.0, 100.0], [0.0, 1.0, 2.0]),
                    ("1h", "hr"): _offsets([90.0, 100.0], [1.0, 2.0]),
                },
                {"hr": 1},
            ),
            # two equal respiratory rates, both at the latest time: no spread, no slope
            _row({("1h", "rr"): _offsets([18.0, 18.0], [5.0, 5.0])}, {"rr": 2}),
        ]
    )
    got = [dict(zip(FEATURE_NAMES, r, strict=True)) for r in sums.features(rows, latest)]

    assert got[0]["hr_last_6h"] == 100.0 and got[0]["hr_count_6h"] == 3
    assert got[0]["hr_mean_6h"] == 90.0
    assert (got[0]["hr_min_6h"], got[0]["hr_max_6h"]) == (80.0, 100.0)
    assert math.isclose(got[0]["hr_std_6h"], np.std([80.0, 90.0, 100.0]))
    assert math.isclose(got[0]["hr_slope_6h"], 10.0)  # per hour
    assert math.isclose(got[0]["hr_slope_1h"], 10.0) and got[0]["hr_mean_1h"] == 95.0
    # an empty window: every statistic null, its count 0
    assert all(math.isnan(got[0][f"hr_{s}_24h"]) for s in ("last", "mean", "min", "max", "std"))
    assert math.isnan(got[0]["hr_slope_24h"]) and got[0]["hr_count_24h"] == 0
    assert got[0]["rr_count_1h"] == 0 and math.isnan(got[0]["rr_mean_1h"])

    assert (got[1]["rr_mean_1h"], got[1]["rr_std_1h"], got[1]["rr_count_1h"]) == (18.0, 0.0, 2)
    assert math.isnan(got[1]["rr_slope_1h"])  # all samples at one time
    assert got[1]["hr_count_6h"] == 0


def test_one_sample_has_no_slope_and_no_spread() -> None:
    latest = np.full((1, len(VITALS)), np.nan)
    latest[0, VITALS.index("spo2")] = 95.0
    row = _row({("24h", "spo2"): _offsets([95.0], [3.0])}, {"spo2": 1})
    got = dict(zip(FEATURE_NAMES, sums.features(row[None, :], latest)[0], strict=True))
    assert (got["spo2_last_24h"], got["spo2_mean_24h"], got["spo2_std_24h"]) == (95.0, 95.0, 0.0)
    assert math.isnan(got["spo2_slope_24h"]) and got["spo2_count_24h"] == 1
