"""The reference's features and NEWS2 inputs for one patient at many cut times at once.

Training labels a patient at every hour of a stay; calling `features.reference.compute`
once per cut rescans the whole log in Python each time. `feature_rows` answers all cuts of
one patient with numpy, and tests/unit/test_offline_features.py proves it equal to the
reference, so models train on exactly the numbers the live store serves.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from features.news2 import News2Inputs
from features.samples import VitalsSample
from features.windows import FEATURE_NAMES, HOUR_US, RETENTION_US, STATS, VITALS, WINDOWS

_NEVER = np.iinfo(np.int64).max
_GATHER_BUDGET = 1 << 16
"""Most elements in one gathered [vital, cut, sample] block (512 KiB a float64 array): the
few arrays a block needs stay in a core's L2 cache, which measured ~1.7x faster on a
minute-rate stay than one block for all cuts, and a dense log's block stays small."""

_NEWS2_VITALS = {
    "respiratory_rate": VITALS.index("rr"),
    "spo2": VITALS.index("spo2"),
    "systolic_bp": VITALS.index("sbp"),
    "heart_rate": VITALS.index("hr"),
    "temperature": VITALS.index("temp"),
}
_NEWS2_ATTRIBUTES = ("supplemental_o2", "consciousness")
"""NEWS2 inputs that VitalsSample carries under the same name."""


@dataclass(frozen=True)
class FeatureRows:
    """One row per cut, in the order the cuts were given."""

    as_of_us: np.ndarray
    """int64 [n_cuts]: the newest observed_us at or before the cut; -1 where there is none."""
    values: np.ndarray
    """float64 [n_cuts, len(FEATURE_NAMES)]: NaN where the reference gives None; the whole
    row is NaN where there is no sample (the reference has no answer there)."""
    news2: list[News2Inputs | None]
    """None where there is no sample."""


def feature_rows(
    log: Sequence[VitalsSample],
    cuts_us: Sequence[int] | np.ndarray,
    news2_lookback_h: float = 4.0,
) -> FeatureRows:
    """Row i equals `reference.compute([s for s in log if s.observed_us <= cuts_us[i]])`.

    That is the stream's state once everything observed by the cut has arrived. Cuts may be
    unsorted or repeated.
    """
    cuts = np.asarray(cuts_us, dtype=np.int64).reshape(-1)
    result = _no_rows(len(cuts))
    candidates, until = _candidates(log)
    # Between consecutive `until` bounds the set of surviving deliveries is fixed, so each
    # such regime is a plain "everything observed by the cut" problem; a log without
    # diverging redeliveries is a single regime.
    bounds = np.unique(until[until != _NEVER])
    regime = np.searchsorted(bounds, cuts, side="right")
    for k in np.unique(regime):
        floor = bounds[k - 1] if k else np.iinfo(np.int64).min
        members = [s for s, u in zip(candidates, until, strict=True) if u > floor]
        rows = np.flatnonzero(regime == k)
        part = _rows(members, cuts[rows], news2_lookback_h)
        result.as_of_us[rows] = part.as_of_us
        result.values[rows] = part.values
        for row, inputs in zip(rows.tolist(), part.news2, strict=True):
            result.news2[row] = inputs
    return result


def _no_rows(n_cuts: int) -> FeatureRows:
    return FeatureRows(
        as_of_us=np.full(n_cuts, -1, dtype=np.int64),
        values=np.full((n_cuts, len(FEATURE_NAMES)), np.nan),
        news2=[None] * n_cuts,
    )


def _candidates(log: Sequence[VitalsSample]) -> tuple[list[VitalsSample], np.ndarray]:
    """Deliveries that win the reference's dedupe for some cut, and the cut where they stop.

    The reference filters by cut and then keeps the first delivery of each event_id in log
    order, so a delivery wins exactly for the cuts at or after its own observed_us and
    before the earliest observed_us of the earlier deliveries of its event_id. Deduping the
    whole log first would differ when a redelivery carries an earlier observed_us: before the
    first copy's time the later copy is what the filtered log holds. Redeliveries observed no
    earlier than a previous copy never win and are dropped here.
    """
    earliest: dict[str, int] = {}
    candidates: list[VitalsSample] = []
    until: list[int] = []
    for sample in log:
        previous = earliest.get(sample.event_id)
        if previous is None or sample.observed_us < previous:
            candidates.append(sample)
            until.append(_NEVER if previous is None else previous)
            earliest[sample.event_id] = sample.observed_us
    return candidates, np.array(until, dtype=np.int64)


def _rows(members: list[VitalsSample], cuts: np.ndarray, news2_lookback_h: float) -> FeatureRows:
    """`feature_rows` for cuts that see every member observed by the cut, each only once."""
    result = _no_rows(len(cuts))
    # Sorted by (observed_us, event_id), the last entry of any range is the reference's
    # tie-broken "latest", and windows ending at as_of are contiguous slices.
    order = sorted(members, key=lambda s: (s.observed_us, s.event_id))
    times = np.array([s.observed_us for s in order], dtype=np.int64)
    ends = np.searchsorted(times, cuts, side="right")
    seen = np.flatnonzero(ends > 0)
    if not len(seen):
        return result
    result.as_of_us[seen] = times[ends[seen] - 1]
    # Cuts with the same as_of share a row, so each distinct as_of is computed once.
    distinct, which = np.unique(result.as_of_us[seen], return_inverse=True)
    ends = np.searchsorted(times, distinct, side="right")
    vitals = np.array([s.vitals for s in order], dtype=np.float64).T  # None -> NaN
    present = ~np.isnan(vitals)  # VitalsObservation rejects real NaN
    # newest[v, i]: position of the newest sample at or before i carrying vital v, else -1.
    newest = np.maximum.accumulate(np.where(present, np.arange(len(order)), -1), axis=1)
    result.values[seen] = _window_features(times, vitals, present, newest, distinct, ends)[which]
    inputs = _news2_inputs(order, times, newest, distinct, ends, news2_lookback_h)
    for row, i in zip(seen.tolist(), which.tolist(), strict=True):
        result.news2[row] = inputs[i]
    return result


def _window_features(
    times: np.ndarray,
    vitals: np.ndarray,
    present: np.ndarray,
    newest: np.ndarray,
    as_of: np.ndarray,
    ends: np.ndarray,
) -> np.ndarray:
    """[len(as_of), len(FEATURE_NAMES)] in FEATURE_NAMES order (vital, window, stat).

    Everything but mean, std and slope is exact bookkeeping answered in O(1) per window
    from per-sample tables (prefix counts, newest/oldest present position, range min/max),
    so only the floating-point sums touch each window's samples.
    """
    n = len(times)
    starts = [as_of - hours * HOUR_US for _, hours in WINDOWS]
    begins = [np.searchsorted(times, start, side="right") for start in starts]
    longest = max(int((ends - b).max()) for b in begins)
    oldest = np.minimum.accumulate(np.where(present, np.arange(n), n)[:, ::-1], axis=1)[:, ::-1]
    counted = np.zeros((len(VITALS), n + 1), dtype=np.int64)
    np.cumsum(present, axis=1, out=counted[:, 1:])
    lowest, highest = _range_table(vitals, np.fmin, longest), _range_table(vitals, np.fmax, longest)
    # A trailing sentinel sample (value 0, weight 0) pads ragged windows into one block.
    sentinel = np.zeros((len(VITALS), 1))
    zeroed = np.concatenate([np.where(present, vitals, 0.0), sentinel], axis=1)
    weight = np.concatenate([present.astype(np.float64), sentinel], axis=1)
    vital = np.arange(len(VITALS))[:, None]
    out = np.empty((len(as_of), len(VITALS), len(WINDOWS), len(STATS)))
    for w, (start, begin) in enumerate(zip(starts, begins, strict=True)):
        count = counted[:, ends] - counted[:, begin]
        first = np.minimum(oldest[:, begin], n - 1)
        last = newest[:, ends - 1]
        mean, std, slope = _moments(zeroed, weight, times, begin, ends, start, count)
        stats = {
            "last": np.where(count > 0, vitals[vital, last], np.nan),
            "mean": mean,
            "min": _range_query(lowest, np.fmin, begin, ends),
            "max": _range_query(highest, np.fmax, begin, ends),
            "std": std,
            "count": count.astype(np.float64),
            # The reference tests the time spread, not sxx, which equal times can leave
            # at rounding noise instead of 0.
            "slope": np.where((count >= 2) & (times[first] != times[last]), slope, np.nan),
        }
        out[:, :, w, :] = np.stack([stats[name] for name in STATS], axis=-1).transpose(1, 0, 2)
    return out.reshape(len(as_of), len(FEATURE_NAMES))


def _range_table(vitals: np.ndarray, pick: np.ufunc, longest: int) -> np.ndarray:
    """table[k, v, i] = pick over vitals[v, i : i + 2**k], skipping NaN (a sparse table).

    Min and max involve no arithmetic, so two overlapping power-of-two halves answer any
    window exactly, without scanning it; levels stop at the longest window, so the table
    costs log2(longest window) copies of the vitals.
    """
    table = np.full((int(longest).bit_length(), *vitals.shape), np.nan)
    table[0] = vitals
    for k in range(1, len(table)):
        half = 2 ** (k - 1)
        pick(table[k - 1, :, :-half], table[k - 1, :, half:], out=table[k, :, :-half])
    return table


def _range_query(
    table: np.ndarray, pick: np.ufunc, begins: np.ndarray, ends: np.ndarray
) -> np.ndarray:
    """[vital, cut]: pick over samples [begins, ends); NaN where a vital has none."""
    level = np.frexp(ends - begins)[1] - 1  # floor(log2(span)), exact for integers
    return pick(table[level, :, begins], table[level, :, ends - 2**level]).T


def _moments(
    zeroed: np.ndarray,
    weight: np.ndarray,
    times: np.ndarray,
    begins: np.ndarray,
    ends: np.ndarray,
    start: np.ndarray,
    count: np.ndarray,
) -> np.ndarray:
    """[mean, std, slope] x [vital, cut] over the samples [begins, ends) of each window.

    Computed directly on each window's own samples with the reference's two-pass formulas
    rather than from prefix sums: differences of running sums over a long stay lose the
    small variance of a steady vital (a constant hour of SpO2 would get a std of ~1e-6
    instead of 0), and the square root amplifies that. Hours are `(t - start) / HOUR_US`
    from exact int64 differences, bit-identical to the reference's, so large epoch
    timestamps cost no precision either.
    """
    result = np.empty((3, len(VITALS), len(begins)))
    span = ends - begins
    step = max(1, _GATHER_BUDGET // (len(VITALS) * int(span.max())))
    for c in range(0, len(begins), step):
        part = slice(c, c + step)
        offsets = np.arange(span[part].max())
        index = begins[part, None] + offsets
        index[offsets >= span[part, None]] = zeroed.shape[1] - 1
        x = np.take(zeroed, index, axis=1)  # [vital, cut, sample]
        w = np.take(weight, index, axis=1)
        hours = (np.take(times, index, mode="clip") - start[part, None]) / HOUR_US
        n = count[:, part]
        with np.errstate(invalid="ignore", divide="ignore"):  # empty windows give NaN
            mean = np.vecdot(x, w) / n
            dev = x - mean[..., None]
            dev *= w
            mean_h = np.vecdot(w, hours) / n
            dev_h = hours - mean_h[..., None]
            dev_h *= w
            result[0, :, part] = mean
            result[1, :, part] = np.sqrt(np.vecdot(dev, dev) / n)
            result[2, :, part] = np.vecdot(dev_h, dev) / np.vecdot(dev_h, dev_h)
    return result


def _news2_inputs(
    order: list[VitalsSample],
    times: np.ndarray,
    newest: np.ndarray,
    as_of: np.ndarray,
    ends: np.ndarray,
    news2_lookback_h: float,
) -> list[News2Inputs]:
    """The reference's NEWS2 inputs at each as_of: each parameter's latest recent value."""
    # The reference keeps t >= as_of - lookback among t > as_of - 24 h: one lower bound.
    earliest = as_of - min(int(news2_lookback_h * HOUR_US), RETENTION_US - 1)
    newest_of = {name: newest[v] for name, v in _NEWS2_VITALS.items()}
    for name in _NEWS2_ATTRIBUTES:
        has = np.array([getattr(s, name) is not None for s in order], dtype=bool)
        newest_of[name] = np.maximum.accumulate(np.where(has, np.arange(len(order)), -1))
    picked: dict[str, list[int]] = {}
    for name, at in newest_of.items():
        j = at[ends - 1]
        picked[name] = np.where((j >= 0) & (times[j] >= earliest), j, -1).tolist()
    inputs: list[News2Inputs] = []
    for c in range(len(as_of)):
        chosen = {name: order[j[c]] if j[c] >= 0 else None for name, j in picked.items()}
        fields: dict[str, Any] = {
            name: None if s is None else s.vitals[_NEWS2_VITALS[name]]
            for name, s in chosen.items()
            if name in _NEWS2_VITALS
        }
        for name in _NEWS2_ATTRIBUTES:
            s = chosen[name]
            fields[name] = None if s is None else getattr(s, name)
        spo2_event = chosen["spo2"]
        scale = 1 if spo2_event is None else spo2_event.spo2_scale
        inputs.append(News2Inputs(**fields, spo2_scale=scale))
    return inputs
