"""The simulated cohort is reproducible, valid, and clinically shaped: deteriorations look
deranged near their event, chronic baselines stay event-free, syndromes differ."""

from __future__ import annotations

import statistics
from collections import defaultdict
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from features import reference
from features.news2 import news2
from features.samples import VitalsSample
from models import cohort
from models.cohort import SUDDEN, CohortSpec, PatientCourse
from models.eventlog import INFO_FILE, OUTCOMES_FILE, VITALS_FILE, read_info, read_outcomes
from streams.events import VitalsObservation

SMALL = CohortSpec(patients=24, days=0.75, seed=4)
WARD = CohortSpec(patients=90, days=1.5, seed=1)
SICK = CohortSpec(patients=120, days=2.0, seed=2, monitored_share=1.0, deteriorating=1.0)


def by_patient(spec: CohortSpec) -> tuple[list[PatientCourse], dict[str, list[dict]]]:
    courses = cohort.courses(spec)
    events: dict[str, list[dict]] = defaultdict(list)
    for event in cohort.events(spec, courses):
        events[event["patient_id"]].append(event)
    return courses, events


@pytest.fixture(scope="module")
def ward() -> tuple[list[PatientCourse], dict[str, list[dict]]]:
    return by_patient(WARD)


@pytest.fixture(scope="module")
def sick() -> tuple[list[PatientCourse], dict[str, list[dict]]]:
    return by_patient(SICK)


def at(event: dict) -> datetime:
    return VitalsObservation.model_validate(event).observed_at


def within(events: list[dict], start: datetime, end: datetime) -> list[dict]:
    return [e for e in events if start <= at(e) <= end]


def news2_total(events: list[dict], as_of: datetime) -> int:
    """NEWS2 as the stream scores it, from the events of the 4 h up to `as_of`."""
    recent = [
        VitalsSample.from_event(VitalsObservation.model_validate(e))
        for e in within(events, as_of - timedelta(hours=4), as_of)
    ]
    return news2(reference.compute(recent)[2]).total if recent else 0


def mean_of(events: list[dict], field: str) -> float | None:
    values = [e[field] for e in events if field in e]
    return statistics.fmean(values) if values else None


def last_of(events: list[dict], field: str) -> float | None:
    values = [e[field] for e in events if field in e]
    return values[-1] if values else None


def test_same_seed_same_files_different_seed_different_files(tmp_path: Path) -> None:
    first = cohort.write(SMALL, tmp_path / "a")
    second = cohort.write(SMALL, tmp_path / "b")
    other = cohort.write(replace(SMALL, seed=5), tmp_path / "c")
    for name in (VITALS_FILE, OUTCOMES_FILE, INFO_FILE):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
    assert first == second == read_info(tmp_path / "a")
    assert other["sha256"][VITALS_FILE] != first["sha256"][VITALS_FILE]
    assert first["generator"] == "vigil-cohort-1" and first["spec"]["seed"] == 4
    assert first["spec"]["start"] == "2026-01-05T00:00:00Z"
    assert len(read_outcomes(tmp_path / "a")) == SMALL.patients


def test_a_patient_does_not_depend_on_the_rest_of_the_cohort() -> None:
    _, alone = by_patient(replace(SMALL, patients=3))
    _, among_more = by_patient(SMALL)
    for patient_id, events in alone.items():
        assert among_more[patient_id] == events


def test_every_event_valid_in_time_order_and_inside_the_stay(ward) -> None:
    courses, events = ward
    merged = list(cohort.events(WARD, courses))
    observed = [VitalsObservation.model_validate(e).observed_at for e in merged]
    assert observed == sorted(observed)
    assert len({e["event_id"] for e in merged}) == len(merged)
    assert all(e["observed_at"].endswith("Z") for e in merged)
    for c in courses:
        mine = [at(e) for e in events[c.patient_id]]
        assert mine, c.patient_id
        assert c.admitted_at <= min(mine) and max(mine) <= c.discharged_at
        if c.event_at is not None:
            assert c.discharged_at == c.event_at
    monitor = [e for e in merged if e["source"] == "monitor"]
    manual = [e for e in merged if e["source"] == "manual"]
    assert monitor and manual
    assert 0.01 < sum("heart_rate" not in e for e in monitor) / len(monitor) < 0.1
    assert all("temperature" not in e and "consciousness" not in e for e in monitor)


def test_outcomes_tell_the_hidden_course(ward) -> None:
    courses, _ = ward
    outcomes = cohort.outcomes(courses)
    assert [o.patient_id for o in outcomes] == [c.patient_id for c in courses]
    assert {o.baseline for o in outcomes} <= set(cohort.BASELINES)
    assert {o.unit for o in outcomes} <= set(cohort.UNITS)
    for c, o in zip(courses, outcomes, strict=True):
        assert o.event_at == c.event_at and o.syndrome == c.syndrome
        if o.syndrome is None:
            assert o.event_at is None and o.event_kind is None
        if o.event_at is not None:
            assert o.event_kind in ("icu_transfer", "cardiac_arrest", "death")
            assert c.onset_at is not None and c.onset_at < o.event_at


def test_deteriorations_are_deranged_near_the_event(sick) -> None:
    courses, events = sick
    rises = []
    for c in courses:
        if c.event_at is None or c.syndrome == SUDDEN:
            continue
        mine = events[c.patient_id]
        early = news2_total(mine, c.admitted_at + timedelta(hours=1))
        late = news2_total(mine, c.event_at)
        rises.append(late - early)
        threshold = c.deterioration.threshold
        assert c.state_at(c.event_at).severity >= threshold - 0.01, c.patient_id
        assert c.state_at(c.event_at - timedelta(minutes=2)).severity < threshold, c.patient_id
    assert len(rises) > 30
    assert statistics.fmean(rises) >= 4
    assert statistics.median(rises) >= 3


def test_some_deteriorations_recover_without_an_event(sick) -> None:
    courses, _ = sick
    recovered = [c for c in courses if c.deterioration and c.deterioration.recovers]
    assert recovered and all(c.event_at is None for c in recovered)
    over = [c for c in recovered if c.deterioration.recovered_h() < SICK.days * 24]
    assert over
    for c in over:
        hours = (c.discharged_at - c.admitted_at) / timedelta(hours=1)
        states = [c.state_at(c.admitted_at + timedelta(hours=h)) for h in range(int(hours))]
        assert 0.25 < max(s.severity for s in states) < 0.75, c.patient_id
        assert c.state_at(c.discharged_at).severity == 0


def test_stable_copd_is_scale_2_with_low_spo2_and_no_event(ward) -> None:
    courses, events = ward
    copd = [c for c in courses if c.baseline.kind == "copd" and c.syndrome is None]
    assert copd
    for c in copd:
        assert c.event_at is None
        with_spo2 = [e for e in events[c.patient_id] if "spo2" in e]
        assert all(e["spo2_scale"] == 2 for e in with_spo2)
        assert 86 <= statistics.median(e["spo2"] for e in with_spo2) <= 93
    others = [e for c in courses if c.baseline.kind != "copd" for e in events[c.patient_id]]
    assert all(e["spo2_scale"] == 1 for e in others if "spo2" in e)


def test_syndromes_have_their_own_signature(sick) -> None:
    courses, events = sick
    change: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for c in courses:
        if c.event_at is None or c.onset_at is None:
            continue
        mine = events[c.patient_id]
        before = within(mine, c.admitted_at, c.onset_at)
        near = within(mine, c.event_at - timedelta(hours=2), c.event_at)
        for field in ("systolic_bp", "spo2", "heart_rate"):
            first, last = mean_of(before, field), last_of(near, field)
            if first is not None and last is not None:
                change[c.syndrome][field].append(last - first)

    def mean(syndrome: str, field: str) -> float:
        assert len(change[syndrome][field]) >= 5, (syndrome, field)
        return statistics.fmean(change[syndrome][field])

    assert mean("haemorrhage", "systolic_bp") < mean("respiratory_failure", "systolic_bp") - 10
    assert mean("respiratory_failure", "spo2") < mean("haemorrhage", "spo2") - 2
    assert mean("heart_failure", "systolic_bp") > mean("sepsis", "systolic_bp") + 10
    assert mean("haemorrhage", "heart_rate") > 15
