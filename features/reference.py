"""Plain recomputation of the vitals features from a raw event log.

Deliberately naive (lists, loops, the contract's definitions read literally) so that it
is obviously right; tests prove the Redis store equal to it, and training code (later
issues) uses it to compute features offline without train/serve skew.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from typing import Any

from features.news2 import News2Inputs
from features.samples import VitalsSample
from features.windows import HOUR_US, RETENTION_US, STATS, VITALS, WINDOWS


def dedupe(log: Iterable[VitalsSample]) -> list[VitalsSample]:
    """First delivery of each event_id wins; redeliveries change nothing."""
    seen: dict[str, VitalsSample] = {}
    for sample in log:
        seen.setdefault(sample.event_id, sample)
    return list(seen.values())


def _latest(rows: list[tuple[int, str, Any]]) -> Any:
    return max(rows, key=lambda r: (r[0], r[1]))[2] if rows else None


def window_stats(points: list[tuple[int, str, float]], start_us: int) -> dict[str, float | None]:
    values = [v for _, _, v in points]
    n = len(values)
    if n == 0:
        return {"last": None, "mean": None, "min": None, "max": None, "std": None,
                "count": 0.0, "slope": None}  # fmt: skip
    mean = sum(values) / n
    std = math.sqrt(sum((v - mean) ** 2 for v in values) / n)
    hours = [(t - start_us) / HOUR_US for t, _, _ in points]
    slope = None
    if n >= 2 and min(t for t, _, _ in points) != max(t for t, _, _ in points):
        mx = sum(hours) / n
        sxx = sum((h - mx) ** 2 for h in hours)
        sxy = sum((h - mx) * (v - mean) for h, v in zip(hours, values, strict=True))
        slope = sxy / sxx
    return {"last": _latest(points), "mean": mean, "min": min(values), "max": max(values),
            "std": std, "count": float(n), "slope": slope}  # fmt: skip


def compute(
    log: Iterable[VitalsSample], news2_lookback_h: float = 4.0
) -> tuple[int, dict[str, float | None], News2Inputs]:
    """(as_of in us, features by name, NEWS2 inputs) for one patient's event log."""
    events = dedupe(log)
    as_of = max(e.observed_us for e in events)
    kept = [e for e in events if e.observed_us > as_of - RETENTION_US]
    features: dict[str, float | None] = {}
    for i, vital in enumerate(VITALS):
        for window, hours in WINDOWS:
            start = as_of - hours * HOUR_US
            points = [
                (e.observed_us, e.event_id, e.vitals[i])
                for e in kept
                if e.observed_us > start and e.vitals[i] is not None
            ]
            stats = window_stats(points, start)
            for stat in STATS:
                features[f"{vital}_{stat}_{window}"] = stats[stat]

    since = as_of - int(news2_lookback_h * HOUR_US)
    recent = [e for e in kept if e.observed_us >= since]

    def latest(get: Callable[[VitalsSample], Any]) -> Any:
        return _latest([(e.observed_us, e.event_id, get(e)) for e in recent if get(e) is not None])

    spo2_event = latest(lambda e: e if e.vitals[2] is not None else None)
    inputs = News2Inputs(
        respiratory_rate=latest(lambda e: e.vitals[1]),
        spo2=spo2_event.vitals[2] if spo2_event else None,
        spo2_scale=spo2_event.spo2_scale if spo2_event else 1,
        supplemental_o2=latest(lambda e: e.supplemental_o2),
        systolic_bp=latest(lambda e: e.vitals[4]),
        heart_rate=latest(lambda e: e.vitals[0]),
        consciousness=latest(lambda e: e.consciousness),
        temperature=latest(lambda e: e.vitals[3]),
    )
    return as_of, features, inputs
