"""Memory: Redis bytes per patient after a day of 1/min vitals, and worker RSS by ward size.

Redis: a simulated day of every patient's monitor goes straight through the project's
`FeatureStore` (the worker's Lua script), mostly an hour per call, which leaves the same
state as a day of one-event batches (the state depends only on the set of events, KEYS.md).
Then each patient is scored once by the worker's own `PatientScorer`, and the 24 h score
history is filled as a day of one score per vitals event leaves it (at one event a minute
each event is its own re-score): that score, re-stamped at each event's time, written
with `FeatureStore.save_scores`. `INFO memory` is read before and after each part.

On the way, ten minutes after the first hour and ten minutes after the full day are
applied one event per patient per call, as live traffic arrives, and timed: the cost of
the Lua script against the length of the window (which it rescanned on every call until
Redis layout 2.2, and now only when an extreme or its anchor leaves a window).
"""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import redis.asyncio as aioredis

from bench.ceilings import Batch, server_cpu
from bench.feed import Record, produce, renamed_patients, ward_hours
from bench.services import Services
from bench.workers import running, wait_batches_done, wait_consumed
from features.client import connect
from features.samples import VitalsSample, from_us
from features.store import FeatureStore, PatientFeatures, ScoreUpdate
from features.windows import HOUR_US
from streams import topics
from streams.alerts import AlertPolicy
from streams.events import RiskScore, VitalsObservation
from streams.metrics import Metrics
from streams.scoring import BatchResult, ModelSet, PatientScorer, encode
from streams.settings import Settings

KEY_KINDS = ("samples", "ids", "meta", "risk", "history", "alert")
DAY_H = 24
TIMED_MINUTES = 10
MINUTE_US = HOUR_US // 60


@dataclass(frozen=True)
class LuaRate:
    """Events applied one per patient per call, pipelined across patients, and timed."""

    window_samples: float
    """Mean samples per patient in the window after the timed calls."""
    events: int
    seconds: float
    server_cpu_s: float

    @property
    def events_per_s(self) -> float:
        return self.events / self.seconds


@dataclass(frozen=True)
class RedisMemory:
    patients: int
    samples_per_patient: float
    history_per_patient: float
    feature_bytes_per_patient: float
    score_bytes_per_patient: float
    key_bytes: dict[str, float]
    """MEMORY USAGE of each of a patient's keys, mean over the patients."""
    lua_after_1h: LuaRate
    lua_after_24h: LuaRate

    @property
    def bytes_per_patient(self) -> float:
        return self.feature_bytes_per_patient + self.score_bytes_per_patient


@dataclass(frozen=True)
class WorkerRss:
    patients: int
    events: int
    rss_bytes: int
    peak_rss_bytes: int


def _samples(records: list[Record]) -> list[tuple[str, VitalsSample]]:
    return [
        (r.patient_id, VitalsSample.from_event(VitalsObservation.model_validate_json(r.value)))
        for r in records
    ]


def _chunks(
    samples: list[tuple[str, VitalsSample]], start_us: int, end_us: int, width_us: int
) -> list[Batch]:
    """Samples observed in [start, end), per patient, in consecutive chunks of `width_us`."""
    chunks: dict[int, Batch] = defaultdict(lambda: defaultdict(list))
    for pid, s in samples:
        if start_us <= s.observed_us < end_us:
            chunks[(s.observed_us - start_us) // width_us][pid].append(s)
    return [dict(chunks[k]) for k in sorted(chunks)]


async def _apply(
    store: FeatureStore, batches: list[Batch], features: dict[str, PatientFeatures]
) -> None:
    for batch in batches:
        features.update(await store.apply_vitals(batch))


async def _timed_minutes(
    store: FeatureStore, batches: list[Batch], features: dict[str, PatientFeatures]
) -> LuaRate:
    cpu, started = await server_cpu(store.client), time.perf_counter()
    await _apply(store, batches, features)
    seconds = time.perf_counter() - started
    return LuaRate(
        window_samples=sum(pf.samples for pf in features.values()) / len(features),
        events=sum(len(v) for b in batches for v in b.values()),
        seconds=seconds,
        server_cpu_s=await server_cpu(store.client) - cpu,
    )


async def _used(client: aioredis.Redis) -> int:
    return int((await client.info("memory"))["used_memory"])


def _store(client: aioredis.Redis, settings: Settings) -> FeatureStore:
    return FeatureStore(
        client,
        settings.redis_namespace,
        ttl_h=settings.patient_ttl_h,
        news2_lookback_h=settings.news2_lookback_h,
        history_h=settings.history_h,
    )


async def _score_once(
    store: FeatureStore, settings: Settings, features: dict[str, PatientFeatures]
) -> list[RiskScore]:
    """Every patient scored by the worker's scorer (snapshot, alert state, ward index)."""
    models = ModelSet.from_settings(settings)
    models.refresh(force=True)
    policy = AlertPolicy.load(settings.alert_policy)
    scorer = PatientScorer(Metrics(), policy, settings.topic_prefix, models)
    triggers = {pid: f"{pid}-last" for pid in features}
    result = BatchResult()
    scorer.score(features, triggers, {}, topics.VITALS, result)
    await store.save_scores(result.stored)
    return result.scores


async def _fill_history(
    store: FeatureStore,
    scores: list[RiskScore],
    features: dict[str, PatientFeatures],
    times: dict[str, list[int]],
) -> None:
    """One history entry per vitals event, at the event's time, through `save_scores`."""
    alert = {
        pid: await store.client.hget(store.keys(pid).alert, "state") or b"{}" for pid in features
    }
    by_patient = {s.patient_id: s for s in scores}
    for step in range(max(len(t) for t in times.values())):
        updates = []
        for pid, stamps in times.items():
            if step >= len(stamps):
                continue
            risk = by_patient[pid].model_copy(update={"scored_at": from_us(stamps[step])})
            updates.append(
                ScoreUpdate(
                    patient_id=pid,
                    fused=risk.scores.fused or 0.0,
                    scored_us=stamps[step],
                    risk_json=encode(risk),
                    features=features[pid].values,
                    alert_state=alert[pid],
                    alert_outbox=None,
                )
            )
        await store.save_scores(updates)


async def _key_bytes(client: aioredis.Redis, store: FeatureStore, pids: list[str]) -> dict:
    totals = dict.fromkeys(KEY_KINDS, 0.0)
    for pid in pids:
        keys = store.keys(pid)
        for kind in KEY_KINDS:
            used = await client.memory_usage(getattr(keys, kind), samples=0)
            totals[kind] += used or 0
    return {kind: total / len(pids) for kind, total in totals.items()}


async def _redis_day(services: Services, patients: int) -> RedisMemory:
    settings = services.fresh("mem", create_topics=False)
    records = ward_hours(patients, DAY_H + TIMED_MINUTES / 60)
    samples = _samples(records)
    t0 = min(s.observed_us for _, s in samples)
    hour, timed, day = t0 + HOUR_US, TIMED_MINUTES * MINUTE_US, t0 + DAY_H * HOUR_US
    times: dict[str, list[int]] = defaultdict(list)
    for pid, s in sorted(samples, key=lambda ps: ps[1].observed_us):
        times[pid].append(s.observed_us)
    client = connect(services.redis_url)
    store = _store(client, settings)
    features: dict[str, PatientFeatures] = {}
    try:
        before = await _used(client)
        await _apply(store, _chunks(samples, t0, hour, HOUR_US), features)
        after_1h = await _timed_minutes(
            store, _chunks(samples, hour, hour + timed, MINUTE_US), features
        )
        await _apply(store, _chunks(samples, hour + timed, day, HOUR_US), features)
        after_24h = await _timed_minutes(
            store, _chunks(samples, day, day + timed, MINUTE_US), features
        )
        after_features = await _used(client)
        scores = await _score_once(store, settings, features)
        await _fill_history(store, scores, features, times)
        after_scores = await _used(client)
        key_bytes = await _key_bytes(client, store, sorted(features))
        history = [await client.zcard(store.keys(pid).history) for pid in features]
    finally:
        await client.aclose()
    n = len(features)
    return RedisMemory(
        patients=n,
        samples_per_patient=sum(pf.samples for pf in features.values()) / n,
        history_per_patient=sum(history) / n,
        feature_bytes_per_patient=(after_features - before) / n,
        score_bytes_per_patient=(after_scores - after_features) / n,
        key_bytes=key_bytes,
        lua_after_1h=after_1h,
        lua_after_24h=after_24h,
    )


def redis_per_patient(services: Services, patients: int) -> RedisMemory:
    return asyncio.run(_redis_day(services, patients))


def worker_rss(
    services: Services, template: list[Record], wards: list[int], per_patient: int, log: Path
) -> list[WorkerRss]:
    """RSS of one worker after it has scored `per_patient` events of each of `wards[i]`
    distinct patients (cumulative), starting with the idle worker."""
    settings = services.fresh("rss")
    topic = settings.topic(topics.VITALS)
    with running(settings, 1, log) as (worker,):
        rows = [WorkerRss(0, 0, worker.rss_bytes(), worker.peak_rss_bytes())]
        sent = 0
        for patients in wards:
            records = renamed_patients(
                template, rows[-1].patients, patients - rows[-1].patients, per_patient
            )
            produce(services.bootstrap, topic, records)
            sent += len(records)
            wait_consumed([worker], topic, sent, timeout_s=300)
            wait_batches_done([worker], topic, timeout_s=60)
            rows.append(WorkerRss(patients, sent, worker.rss_bytes(), worker.peak_rss_bytes()))
    return rows
