"""Rebuild the Redis feature state from the vitals topic (after Redis lost its data).

Reads `vitals.v1` from the beginning with no consumer group (so the workers' committed
offsets are untouched) up to the end offsets seen at start, and applies every valid event
through the same Lua script as the worker. Idempotent: running it on intact state
changes nothing. Scores, the API snapshot and alert state come back with each patient's
next event; after a wipe a still-sick patient opens a new alert episode (a new alert_id).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from aiokafka import AIOKafkaConsumer, TopicPartition
from pydantic import ValidationError

from features.client import connect
from features.samples import VitalsSample
from features.store import FeatureStore
from streams import topics
from streams.deadletters import RawRecord, Rejected, parse_record
from streams.events import VitalsObservation
from streams.kafka import aiokafka_options, client_options
from streams.settings import Settings


@dataclass
class RebuildReport:
    records: int = 0
    invalid: int = 0
    patients: int = 0


def _partitions(settings: Settings, topic: str) -> set[int]:
    # aiokafka loads a topic's metadata only for a subscription; kafka-python asks directly
    from kafka import KafkaConsumer

    consumer = KafkaConsumer(**client_options(settings))
    try:
        parts = consumer.partitions_for_topic(topic)
    finally:
        consumer.close()
    if not parts:
        raise RuntimeError(f"topic {topic} does not exist")
    return parts


async def rebuild_features(settings: Settings, batch_max: int = 5000) -> RebuildReport:
    topic = settings.topic(topics.VITALS)
    client = connect(settings.redis_url)
    store = FeatureStore(
        client,
        settings.redis_namespace,
        ttl_h=settings.patient_ttl_h,
        news2_lookback_h=settings.news2_lookback_h,
        history_h=settings.history_h,
    )
    consumer = AIOKafkaConsumer(
        **aiokafka_options(settings), enable_auto_commit=False, group_id=None
    )
    report = RebuildReport()
    patients: set[str] = set()
    await consumer.start()
    try:
        parts = await asyncio.to_thread(_partitions, settings, topic)
        tps = [TopicPartition(topic, p) for p in sorted(parts)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        end = await consumer.end_offsets(tps)
        remaining = {tp for tp in tps if end[tp] > 0}
        while remaining:
            fetched = await consumer.getmany(*remaining, timeout_ms=1000, max_records=batch_max)
            by_patient: dict[str, list[VitalsSample]] = {}
            for tp, records in fetched.items():
                for r in records:
                    if r.offset >= end[tp]:
                        continue
                    report.records += 1
                    raw = RawRecord(r.topic, r.partition, r.offset, r.key, r.value)
                    try:
                        obs = parse_record(raw, VitalsObservation, settings.max_message_bytes)
                    except (Rejected, ValidationError):
                        report.invalid += 1
                        continue
                    by_patient.setdefault(obs.patient_id, []).append(VitalsSample.from_event(obs))
            if by_patient:
                await store.apply_vitals(by_patient)
                patients.update(by_patient)
            for tp in list(remaining):
                if await consumer.position(tp) >= end[tp]:
                    remaining.discard(tp)
    finally:
        await consumer.stop()
        await client.aclose()
    report.patients = len(patients)
    return report
