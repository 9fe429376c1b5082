"""The Redis feature store equals the plain reference recomputation, for any arrival order.

Property test (hypothesis): random event logs, shuffled, with redeliveries, applied in
random batch sizes to a real redis-server, give the features of
`features.reference.compute` within 1e-6 relative error. The script keeps its windows
incrementally (running sums, extremes read back when they leave), so longer logs and days
of monitoring check that state too, and state written before it is rebuilt.
"""

from __future__ import annotations

import asyncio
import math
import random
import uuid
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from features import reference
from features.client import connect
from features.news2 import news2
from features.samples import VitalsSample
from features.store import FeatureStore, PatientFeatures, ScoreUpdate
from features.windows import FEATURE_NAMES, RETENTION_US
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
    kept = [e for e in reference.dedupe(log) if e.observed_us > as_of - RETENTION_US]
    assert pf.samples == len(kept)


def apply(redis_url: str, batches: list[list[VitalsSample]], patient: str) -> PatientFeatures:
    async def run() -> PatientFeatures:
        client = connect(redis_url)
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
def event_logs(draw: st.DrawFn, max_events: int = 60) -> list[VitalsSample]:
    n = draw(st.integers(min_value=1, max_value=max_events))
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


def _shuffled_batches(
    log: list[VitalsSample], seed: int, max_size: int
) -> list[list[VitalsSample]]:
    rng = random.Random(seed)
    deliveries = log + [rng.choice(log) for _ in range(rng.randint(0, len(log)))]
    rng.shuffle(deliveries)
    batches, i = [], 0
    while i < len(deliveries):
        size = rng.randint(1, max_size)
        batches.append(deliveries[i : i + size])
        i += size
    return batches


@pytest.mark.services
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(log=event_logs(), seed=st.integers(0, 2**32 - 1))
def test_redis_features_equal_reference_for_any_order(services, log, seed) -> None:
    pf = apply(services.redis_url, _shuffled_batches(log, seed, 15), "p")
    assert_matches_reference(pf, log)


@pytest.mark.services
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(log=event_logs(max_events=400), seed=st.integers(0, 2**32 - 1))
def test_long_logs_in_small_batches_equal_reference(services, log, seed) -> None:
    """Many calls per log: samples leave the windows call by call, extremes with them."""
    pf = apply(services.redis_url, _shuffled_batches(log, seed, 3), "p")
    assert_matches_reference(pf, log)


def _monitored_days(days: int, seed: int) -> list[VitalsSample]:
    """A monitor once a minute (trending, so a window's oldest sample is often its min or
    max; some readings missing) and a manual set every 4 h, over `days`."""
    rng = random.Random(seed)
    log = []
    for minute in range(days * 24 * 60):
        drift = minute / 60  # one unit an hour: the oldest sample is often an extreme
        monitor = {
            "heart_rate": 70 + drift / 2 + 8 * math.sin(minute / 97) + rng.gauss(0, 2),
            "spo2": min(100.0, 97 - drift / 30 + rng.gauss(0, 1)),
            "systolic_bp": 130 - drift / 3 + rng.gauss(0, 4),
            "diastolic_bp": 80 + rng.gauss(0, 3),
        }
        fields = {k: v for k, v in monitor.items() if rng.random() > 0.05}
        if minute % 240 == 0:
            fields |= {
                "temperature": 37 + drift / 50,
                "respiratory_rate": 16.0 + minute % 7,
                "consciousness": "A",
                "supplemental_o2": minute % 480 == 0,
            }
        if fields:
            log.append(_sample(f"m{minute:05d}", minute, **fields))
    return log


@pytest.mark.services
def test_days_of_monitoring_stay_equal_to_reference_every_hour(services) -> None:
    """Three days of 1/min monitoring, a few events per call as they arrive, some late by
    up to 90 minutes and some redelivered: the running windows equal the reference after
    every hour, across window rescans and extremes read back (from the hour blocks too,
    which are trimmed with the day)."""
    log = _monitored_days(3, seed=11)
    rng = random.Random(12)
    arrivals = sorted(
        (s.observed_us + (rng.randint(1, 90) * 60_000_000 if rng.random() < 0.05 else 0), i)
        for i, s in enumerate(log)
    )
    order = [log[i] for _, i in arrivals]
    for again in rng.sample(log, len(log) // 50):
        order.insert(rng.randrange(len(order) + 1), again)

    async def run() -> None:
        client = connect(services.redis_url)
        try:
            store = FeatureStore(client, f"vigil:days-{uuid.uuid4().hex[:6]}:")
            delivered, i = [], 0
            while i < len(order):
                batch = order[i : i + rng.randint(1, 4)]
                i += len(batch)
                delivered += batch
                pf = (await store.apply_vitals({"p": batch}))["p"]
                if len(delivered) // 60 != (len(delivered) - len(batch)) // 60:
                    assert_matches_reference(pf, delivered)
                    # the hour blocks leave with the day: its 24 h, the cutoff's hour and
                    # the hour of as_of, which may have begun
                    assert await client.hlen(store.keys("p").blocks) <= 26
            assert_matches_reference(pf, delivered)
        finally:
            await client.aclose()

    asyncio.run(run())


@pytest.mark.services
def test_a_late_event_exactly_on_a_window_edge_is_outside_that_window(services) -> None:
    """Window w holds `as_of - w < observed_at`: a late event at exactly `as_of - 1h` or
    `as_of - 6h` counts only in the wider windows, now and after as_of moves on."""
    hr = [_sample(f"e{m}", m, heart_rate=60.0 + m % 5) for m in range(0, 7 * 60 + 1, 10)]
    edges = [_sample("at-1h", 6 * 60, heart_rate=150.0), _sample("at-6h", 60, heart_rate=20.0)]
    later = [_sample("next", 7 * 60 + 5, heart_rate=61.0)]
    pf = apply(services.redis_url, [hr, edges[:1], edges[1:]], "p")
    assert pf.features["hr_max_1h"] < 150.0 and pf.features["hr_max_6h"] == 150.0
    assert pf.features["hr_min_6h"] > 20.0 and pf.features["hr_min_24h"] == 20.0
    assert_matches_reference(pf, hr + edges)
    pf = apply(services.redis_url, [hr, edges, later], "p")
    assert_matches_reference(pf, hr + edges + later)


@pytest.mark.services
@pytest.mark.parametrize("stale", ["missing", "other version", "samples added by 2.1"])
def test_state_written_before_the_running_sums_is_rebuilt(services, stale) -> None:
    """Layout 2.1 kept no sums; a patient's next call builds them from its samples (and
    drops latest-sample entries that no longer hold), so upgrading needs no step, nor
    does going back to 2.1 for a while and forward again."""
    log = _monitored_days(2, seed=5)
    first, rest = log[: len(log) // 2], log[len(log) // 2 :]

    async def run() -> tuple[PatientFeatures, PatientFeatures]:
        client = connect(services.redis_url)
        try:
            store = FeatureStore(client, f"vigil:up-{uuid.uuid4().hex[:6]}:")
            for k in range(0, len(first), 30):
                await store.apply_vitals({"p": first[k : k + 30]})
            meta = store.keys("p").meta
            if stale == "missing":
                await client.hdel(meta, "sums", *(f"l{f}" for f in range(1, 12)))
            elif stale == "samples added by 2.1":  # as 2.1's script adds a sample
                late = first[-1]
                minutes = (late.observed_us - first[0].observed_us) / 60e6 - 90
                first.append(_sample("by-2.1", minutes, heart_rate=222.0))
                added = first[-1]
                await client.zadd(
                    store.keys("p").samples, {added.packed() + b"by-2.1": added.observed_us}
                )
                await client.hset(store.keys("p").ids, "by-2.1", added.observed_us)
                await client.hincrby(meta, "accepted", 1)
            else:
                sums = await client.hget(meta, "sums")
                await client.hset(meta, "sums", np.float64(-1).tobytes() + sums[8:])
                await client.hset(meta, "l4", await client.hget(meta, "l1"))
            read = (await store.read_features(["p"]))["p"]
            for k in range(0, len(rest), 30):
                after = (await store.apply_vitals({"p": rest[k : k + 30]}))["p"]
            return read, after
        finally:
            await client.aclose()

    read, after = asyncio.run(run())
    assert_matches_reference(read, first)
    assert_matches_reference(after, log)


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
def test_a_read_or_a_redelivery_leaves_the_stored_state_as_it_was(services) -> None:
    """Nothing accepted, nothing written: only the duplicates counter moves."""
    log = [_sample(f"e{i}", i * 7, heart_rate=60.0 + i, systolic_bp=120.0 - i) for i in range(40)]

    async def run() -> tuple[dict, dict, dict, PatientFeatures]:
        client = connect(services.redis_url)
        try:
            store = FeatureStore(client, f"vigil:same-{uuid.uuid4().hex[:6]}:")
            await store.apply_vitals({"p": log})
            meta = store.keys("p").meta
            before = await client.hgetall(meta)
            read = (await store.read_features(["p"]))["p"]
            after_read = await client.hgetall(meta)
            await store.apply_vitals({"p": log[:5]})
            return before, after_read, await client.hgetall(meta), read
        finally:
            await client.aclose()

    before, after_read, after_redelivery, read = asyncio.run(run())
    assert after_read == before
    assert after_redelivery == {**before, b"duplicates": b"5"}
    assert_matches_reference(read, log)


@pytest.mark.services
def test_events_older_than_24h_are_dropped_and_change_nothing(services) -> None:
    recent = [_sample("new", 30 * 60, heart_rate=90.0)]
    stale = [_sample("old", 0, heart_rate=200.0)]
    pf = apply(services.redis_url, [recent, stale], "p")
    assert pf.dropped == 1
    assert pf.features["hr_max_24h"] == 90.0 and pf.features["hr_count_24h"] == 1


@pytest.mark.services
def test_samples_leaving_the_day_at_once_take_their_ids_with_them(services) -> None:
    """A day's gap pushes 1,200 samples out in one call (more ids than one HDEL takes):
    samples and de-duplication ids alike are gone, and a redelivery of one is dropped."""
    day = [_sample(f"e{i}", i, heart_rate=60.0 + i % 7) for i in range(1200)]
    later = [_sample("later", 3 * 24 * 60, heart_rate=80.0)]

    async def run() -> tuple[PatientFeatures, PatientFeatures, int, int]:
        client = connect(services.redis_url)
        try:
            store = FeatureStore(client, f"vigil:gap-{uuid.uuid4().hex[:6]}:")
            await store.apply_vitals({"p": day})
            after = (await store.apply_vitals({"p": later}))["p"]
            keys = store.keys("p")
            ids, samples = await client.hlen(keys.ids), await client.zcard(keys.samples)
            again = (await store.apply_vitals({"p": day[:1]}))["p"]
            return after, again, ids, samples
        finally:
            await client.aclose()

    after, again, ids, samples = asyncio.run(run())
    assert (ids, samples, after.samples) == (1, 1, 1)
    assert_matches_reference(after, day + later)
    assert (again.dropped, again.duplicates) == (1, 0)


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
        client = connect(services.redis_url)
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
        client = connect(services.redis_url)
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


@pytest.mark.services
def test_scripts_flushed_from_redis_are_loaded_again_and_run_once(services) -> None:
    """A Redis that lost its scripts (restart, SCRIPT FLUSH) gets them again on the next
    call, whose pipeline then runs once more: nothing is applied twice."""
    patient = f"f-{uuid.uuid4().hex[:8]}"
    values = np.full(len(FEATURE_NAMES), np.nan)
    update = ScoreUpdate(patient, 0.3, 1_000, b'{"patient_id": "p"}', values, b"{}", None)

    async def run() -> tuple[PatientFeatures, PatientFeatures, list[bool], dict | None]:
        client = connect(services.redis_url)
        try:
            store = FeatureStore(client, f"vigil:flush-{uuid.uuid4().hex[:6]}:")
            await client.script_flush()
            first = await store.apply_vitals({patient: [_sample("e1", 0, heart_rate=80.0)]})
            await client.script_flush()
            second = await store.apply_vitals({patient: [_sample("e2", 1, heart_rate=90.0)]})
            await client.script_flush()
            stored = await store.set_modality([(patient, "notes", 1_000, b'{"score": 0.5}')])
            await client.script_flush()
            await store.save_scores([update])
            return first[patient], second[patient], stored, await store.patient(patient)
        finally:
            await client.aclose()

    first, second, stored, saved = asyncio.run(run())
    assert (first.accepted, first.duplicates) == (1, 0)
    assert (second.accepted, second.duplicates, second.samples) == (1, 0, 2)
    assert second.features["hr_last_1h"] == 90.0
    assert stored == [True]
    assert saved is not None and saved["risk"] == {"patient_id": "p"}
