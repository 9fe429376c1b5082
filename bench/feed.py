"""Simulated ward events for the benchmarks, as Kafka records; a fast preloader and a
paced sender.

Events come from `streams.simulator.ward_feed` (the demo's ward: every patient on a
monitor that sends once a minute of simulated time), serialised once so that producing
them costs the benchmark as little as possible.
"""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import orjson
from aiokafka import AIOKafkaProducer
from kafka import KafkaProducer

from streams.simulator import ward_feed

INTERVAL_S = 60.0
DETERIORATING = 0.3


@dataclass(frozen=True, slots=True)
class Record:
    key: bytes
    value: bytes
    event_id: str

    @property
    def patient_id(self) -> str:
        return self.key.decode()


def _record(event: dict) -> Record:
    return Record(event["patient_id"].encode(), orjson.dumps(event), event["event_id"])


def ward_hours(patients: int, hours: float, seed: int = 1) -> list[Record]:
    """All events of `patients` beds over `hours` of simulated time ending now."""
    start = datetime.now(UTC) - timedelta(hours=hours)
    return [_record(e) for e in ward_feed(patients, DETERIORATING, start, hours, INTERVAL_S, seed)]


def ward_events(patients: int, events: int, seed: int = 1) -> list[Record]:
    """The first `events` events of a ward of `patients` beds (monitor dropouts make a
    ward send a little less than once a minute per bed, hence the margin)."""
    hours = events * INTERVAL_S / patients / 3600 * 1.15 + 0.1
    records = ward_hours(patients, hours, seed)
    if len(records) < events:
        raise RuntimeError(f"the simulated ward gave {len(records)} events, not {events}")
    return records[:events]


def renamed_patients(
    template: list[Record], first: int, patients: int, per_patient: int
) -> list[Record]:
    """`per_patient` events for each of `patients` distinct ids numbered from `first`,
    values taken in order from the template's patients' courses (so each new patient has
    a plausible course)."""
    courses: dict[bytes, list[dict]] = defaultdict(list)
    for record in template:
        courses[record.key].append(orjson.loads(record.value))
    usable = [c for c in courses.values() if len(c) >= per_patient]
    if not usable:
        raise ValueError(f"no template patient has {per_patient} events")
    out = []
    for i in range(first, first + patients):
        pid = f"bed-{i:05d}"
        for j, event in enumerate(usable[i % len(usable)][:per_patient]):
            out.append(_record({**event, "patient_id": pid, "event_id": f"{pid}-{j}"}))
    return out


def produce(bootstrap: str, topic: str, records: list[Record]) -> None:
    """Every record, as fast as the client goes; returns once the broker has them all."""
    producer = KafkaProducer(
        bootstrap_servers=bootstrap, acks="all", linger_ms=20, batch_size=256 * 1024
    )
    try:
        for r in records:
            producer.send(topic, key=r.key, value=r.value)
        producer.flush()
    finally:
        producer.close()


TICK_S = 0.005
"""The sender's step. Each step costs the load generator and the broker a wakeup and a
produce request whatever it carries: at 4,000 events/s, 1 ms steps took 30-32 % of a
core in the sender and 32-33 % in Kafka, 5 ms steps 21-23 % and 23-27 % (10 ms saved
no more), CPU that the worker under test and Redis share on 2 cores (BENCHMARKS.md,
"Throughput measured on the whole backlog"). A record's send time is taken when it is
handed to the producer, so the wait for its step is not counted as Vigil's latency."""


async def paced_send(
    bootstrap: str,
    topic: str,
    records: list[Record],
    rate: float,
    on_send: Callable[[Record], None] | None = None,
) -> None:
    """Each record at its slot (i / rate after the start), sent in `TICK_S` steps with no
    linger; `on_send` is called just before each send. Returns once the broker has
    acknowledged every record.

    aiokafka rather than kafka-python: on these 2 cores kafka-python's producer used 321 µs
    of CPU a record at 3,000/s, a whole core taken from the worker under test; aiokafka
    uses about 100 (BENCHMARKS.md, "Change: a load generator that leaves the worker its
    core")."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=0)
    await producer.start()
    try:
        acks = []
        started, sent = time.monotonic(), 0
        while sent < len(records):
            due = min(len(records), int((time.monotonic() - started) * rate) + 1)
            for r in records[sent:due]:
                if on_send is not None:
                    on_send(r)
                acks.append(await producer.send(topic, key=r.key, value=r.value))
            sent = max(sent, due)
            await asyncio.sleep(TICK_S)
        await asyncio.gather(*acks)
    finally:
        await producer.stop()
