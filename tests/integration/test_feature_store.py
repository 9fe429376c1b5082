"""The Redis feature store equals the plain reference recomputation, for any arrival order.

Property test (hypothesis): random event logs, shuffled, with redeliveries, applied in
random batch sizes to a real redis-server, give the features of
`features.reference.compute` within 1e-6 relative error.
"""

from __future__ import annotations

import asyncio
import math
import random
import uuid
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
import redis.asyncio as aioredis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from features import reference
from features.news2 import news2
from features.samples import VitalsSample
from features.store import FeatureStore, PatientFeatures, ScoreUpdate
from features.windows import FEATURE_NAMES
from streams.events import VitalsObservation
from tests.strategies import observation_fields

BASE = datetime(2026, 11, 22, 8, 0, tzinfo=UTC)


def _close(a: float | None, b: float | None) -> bool:
    if a is None or b is None:
        return a is b
    return math.isclose(a, b, rel_tol=1e-6, abs_tol=1e-9)


def assert_matches_reference(pf: PatientFeatures, log: list[VitalsSample]) -> None:
    as_of, expected, news2_inputs = reference.compute(log)
    assert pf.as_of_us == as_of
    wrong = {
        name: (pf.features[name], expected[name])
        for name in FEATURE_NAMES
        if not _close(pf.features[name], expected[name])
    }
    assert not wrong, wrong
    assert pf.news2_inputs == news2_inputs


def apply(redis_url: str, batches: list[list[VitalsSample]], patient: str) -> PatientFeatures:
    async def run() -> PatientFeatures:
        client = aioredis.Redis.from_url(redis_url)
        try:
            store = FeatureStore(client, f"vigil:test-{uuid.uuid4().hex[:6]}:")
            result = None
            for batch in batches:
                result = (await store.apply_vitals({patient: batch}))[patient]
            assert result is not None
            return result
        finally:
            await client.aclose()

    return asyncio.run(run())


@st.composite
def event_logs(draw: st.DrawFn) -> list[VitalsSample]:
    n = draw(st.integers(min_value=1, max_value=60))
    span_min = draw(st.sampled_from([30, 300, 1500, 3000]))  # some logs exceed 24 h
    log = []
    for i in range(n):
        obs = VitalsObservation(
            event_id=f"e{i}",
            patient_id="p",
            # whole seconds, with ties: equal timestamps must be handled too
            observed_at=BASE + timedelta(seconds=draw(st.integers(0, span_min * 60))),
            **draw(observation_fields()),
        )
        log.append(VitalsSample.from_event(obs))
    return log


@pytest.mark.services
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(log=event_logs(), seed=st.integers(0, 2**32 - 1))
def test_redis_features_equal_reference_for_any_order(services, log, seed) -> None:
    rng = random.Random(seed)
    deliveries = log + [rng.choice(log) for _ in range(rng.randint(0, len(log)))]
    rng.shuffle(deliveries)
    batches, i = [], 0
    while i < len(deliveries):
        size = rng.randint(1, 15)
        batches.append(deliveries[i : i + size])
        i += size
    pf = apply(services.redis_url, batches, "p")
    assert_matches_reference(pf, log)


def _sample(eid: str, minutes: float, **fields: object) -> VitalsSample:
    obs = VitalsObservation(
        event_id=eid, patient_id="p", observed_at=BASE + timedelta(minutes=minutes), **fields
    )
    return VitalsSample.from_event(obs)


@pytest.mark.services
def test_redelivered_batch_changes_nothing(services) -> None:
    log = [_sample(f"e{i}", i * 7, heart_rate=60.0 + i, systolic_bp=120.0 - i) for i in range(40)]
    once = apply(services.redis_url, [log], "p")
    twice = apply(services.redis_url, [log, log, log[:10]], "p")
    assert once.features == twice.features
    assert twice.duplicates == 10 and twice.accepted == 0


@pytest.mark.services
def test_events_older_than_24h_are_dropped_and_change_nothing(services) -> None:
    recent = [_sample("new", 30 * 60, heart_rate=90.0)]
    stale = [_sample("old", 0, heart_rate=200.0)]
    pf = apply(services.redis_url, [recent, stale], "p")
    assert pf.dropped == 1
    assert pf.features["hr_max_24h"] == 90.0 and pf.features["hr_count_24h"] == 1


@pytest.mark.services
def test_news2_uses_values_at_most_4h_old(services) -> None:
    log = [
        _sample("manual", 0, temperature=39.5, consciousness="V", respiratory_rate=26.0),
        _sample("monitor", 4 * 60, heart_rate=120.0, spo2=94.0),  # exactly 4 h later
        _sample("later", 4 * 60 + 1, heart_rate=125.0),  # now the manual set is > 4 h old
    ]
    pf = apply(services.redis_url, [log[:2]], "p")
    result = news2(pf.news2_inputs)
    assert pf.news2_inputs.temperature == 39.5  # exactly 4 h old still counts
    assert result.components["temperature"] == 2 and result.components["consciousness"] == 3
    pf = apply(services.redis_url, [log], "p")
    result = news2(pf.news2_inputs)
    assert pf.news2_inputs.temperature is None
    assert {"temperature", "consciousness", "respiratory_rate", "systolic_bp"} <= set(
        result.missing
    )
    assert result.components["heart_rate"] == 2
    assert result.components["spo2"] == 1
    # the monitor event carried SpO2 without stating oxygen: the contract default (air)
    assert result.components["supplemental_o2"] == 0
    assert "supplemental_o2" not in result.missing
    assert_matches_reference(pf, log)


def test_modality_scores_keep_the_newest_and_ride_with_the_features(services) -> None:
    """A late or redelivered note never replaces a newer note score, and the scores come
    back in the same round trip as the vitals features; a patient with no vitals yet has
    no features to score."""
    patient, no_vitals = f"m-{uuid.uuid4().hex[:8]}", f"n-{uuid.uuid4().hex[:8]}"

    async def run() -> tuple[list[bool], dict[str, PatientFeatures]]:
        client = aioredis.Redis.from_url(services.redis_url)
        try:
            store = FeatureStore(client, f"vigil:modal-{uuid.uuid4().hex[:6]}:")
            await store.apply_vitals({patient: [_sample("v1", 0, heart_rate=80.0)]})
            stored = await store.set_modality(
                [
                    (patient, "notes", 2_000, b'{"score": 0.7, "version": "n2"}'),
                    (patient, "notes", 1_000, b'{"score": 0.1, "version": "late"}'),
                    (patient, "notes", 2_000, b'{"score": 0.2, "version": "again"}'),
                    (patient, "imaging", 1_500, b'{"score": 0.4, "version": "i1"}'),
                    (no_vitals, "notes", 1_000, b'{"score": 0.9, "version": "n1"}'),
                ]
            )
            return stored, await store.read_features([patient, no_vitals])
        finally:
            await client.aclose()

    stored, features = asyncio.run(run())
    assert stored == [True, False, False, True, True]
    assert set(features) == {patient}
    assert features[patient].notes == {"score": 0.7, "version": "n2"}
    assert features[patient].imaging == {"score": 0.4, "version": "i1"}


def test_a_saved_score_reads_back_with_its_features_old_layout_included(services) -> None:
    """`patient()` (GET /api/patients/{id}) returns the features stored with the latest
    score, as packed doubles since layout 2.1 and as the JSON object of layout 2 before."""
    patient, old = f"s-{uuid.uuid4().hex[:8]}", f"o-{uuid.uuid4().hex[:8]}"
    values = np.full(len(FEATURE_NAMES), np.nan)
    values[FEATURE_NAMES.index("hr_mean_1h")] = 91.25
    update = ScoreUpdate(patient, 0.3, 1_000, b'{"patient_id": "p"}', values, b"{}", None)

    async def run() -> tuple[dict | None, dict | None]:
        client = aioredis.Redis.from_url(services.redis_url)
        try:
            store = FeatureStore(client, f"vigil:saved-{uuid.uuid4().hex[:6]}:")
            await store.save_scores([update])
            await client.hset(
                store.keys(old).risk,
                mapping={"risk": b"{}", "features": b'{"hr_mean_1h": 70.0}'},
            )
            return await store.patient(patient), await store.patient(old)
        finally:
            await client.aclose()

    saved, written_before = asyncio.run(run())
    assert saved is not None and written_before is not None
    assert saved["risk"] == {"patient_id": "p"}
    assert saved["features"]["hr_mean_1h"] == 91.25
    assert saved["features"]["hr_mean_24h"] is None
    assert list(saved["features"]) == list(FEATURE_NAMES)
    assert written_before["features"] == {"hr_mean_1h": 70.0}
