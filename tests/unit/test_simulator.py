"""The simulated ward is reproducible and its deteriorating patients drift plausibly."""

from __future__ import annotations

import random
import statistics
from datetime import UTC, datetime
from itertools import islice

from streams.events import VitalsObservation
from streams.simulator import make_ward, ward_feed

START = datetime(2026, 11, 22, tzinfo=UTC)


def feed(seed: int, n: int = 2000) -> list[dict]:
    return list(islice(ward_feed(20, 0.3, START, 24, 60, seed), n))


def test_same_seed_same_ward_different_seed_different_ward() -> None:
    assert feed(7) == feed(7)
    assert feed(7) != feed(8)


def test_every_event_is_a_valid_contract_event() -> None:
    for event in feed(3, 5000):
        VitalsObservation.model_validate(event)


def test_values_go_missing_like_real_monitors() -> None:
    events = feed(5, 5000)
    assert 0.01 < sum("spo2" not in e for e in events) / len(events) < 0.1
    assert any("temperature" in e for e in events)
    assert sum("temperature" in e for e in events) < len(events) / 10  # manual sets only


def test_deteriorating_patients_drift_and_stable_ones_do_not() -> None:
    rng = random.Random(11)
    ward = make_ward(40, 0.5, 24, rng)
    sick = {p.patient_id for p in ward if p.onset_h is not None and p.onset_h < 10}
    stable = {p.patient_id for p in ward if p.onset_h is None}
    assert sick and stable
    events = list(ward_feed(40, 0.5, START, 24, 300, 11))

    def mean_of(ids: set[str], field: str, first: bool) -> float:
        n = len(events)
        part = events[: n // 12] if first else events[-n // 12 :]
        return statistics.fmean(e[field] for e in part if e["patient_id"] in ids and field in e)

    assert mean_of(sick, "heart_rate", False) - mean_of(sick, "heart_rate", True) > 20
    assert mean_of(sick, "respiratory_rate", False) - mean_of(sick, "respiratory_rate", True) > 6
    assert mean_of(sick, "spo2", True) - mean_of(sick, "spo2", False) > 3
    assert abs(mean_of(stable, "heart_rate", False) - mean_of(stable, "heart_rate", True)) < 8
