"""The simulated ward is reproducible and its deteriorating patients drift plausibly."""

from __future__ import annotations

import random
import statistics
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from itertools import islice

from models.cohort import SUDDEN
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
    ward = make_ward(40, 0.5, 24, random.Random(11), START)
    events: dict[str, list[dict]] = defaultdict(list)
    for event in ward_feed(40, 0.5, START, 24, 300, 11):
        events[event["patient_id"]].append(event)

    def at(event: dict) -> datetime:
        return VitalsObservation.model_validate(event).observed_at

    def change(patient_id: str, field: str) -> float:
        """Mean of the patient's last 2 h minus the mean of its first 2 h."""
        mine = events[patient_id]
        first = [e[field] for e in mine if at(e) < at(mine[0]) + timedelta(hours=2) and field in e]
        last = [e[field] for e in mine if at(e) > at(mine[-1]) - timedelta(hours=2) and field in e]
        return statistics.fmean(last) - statistics.fmean(first)

    sick = [
        p.patient_id
        for p in ward
        if p.syndrome not in (None, SUDDEN)
        and p.state_at(at(events[p.patient_id][-1])).severity >= 0.5
    ]
    stable = [p.patient_id for p in ward if p.syndrome is None]
    assert len(sick) >= 5 and stable

    def mean_change(ids: list[str], field: str) -> float:
        return statistics.fmean(change(i, field) for i in ids)

    assert mean_change(sick, "heart_rate") > 20
    assert mean_change(sick, "respiratory_rate") > 6
    assert mean_change(sick, "spo2") < -3
    assert abs(mean_change(stable, "heart_rate")) < 8
    assert all(at(events[p][-1]) > START + timedelta(hours=23) for p in stable)
