"""Faust ceilings: an agent on the same topic layout that only parses JSON, and one that
also does a Vigil worker's I/O without its computation.

Run by `bench.ceilings` as a subprocess (`python -m bench.bare_faust TOPIC DATADIR
[SINK]`, the caller owning DATADIR); prints `consumed <n> <monotonic seconds>` after every
batch. Each agent is a consumer group of its own, unless BENCH_BARE_APP_ID names one that
several agents share.

- Without SINK, the bare agent: Faust's own `take_events` batches, each record parsed.
- With SINK, the I/O agent: the worker's Kafka consumer and producer buffer
  (`streams.kafka.faust_transport`), Faust monitor (`streams.kafka.lean_monitor`) and
  record schema (`streams.kafka.raw_schema`), Vigil's intake
  (`streams.intake.run_batches`) and, per batch, the worker's round trips with the
  worker's sizes: one pipelined Redis call that records each event id and reads back a
  feature vector per patient, one that stores a score per patient while one record per
  patient is produced to SINK (idempotent, acks=all), the acks awaited. What Vigil does
  beyond this agent is its own computation: validation, the feature script, scoring,
  alert decisions and encoding.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
import uuid
from collections.abc import Sequence

import faust
import orjson
from faust.types import EventT

from features.client import connect
from features.windows import FEATURE_NAMES
from streams.app import Outbound
from streams.intake import run_batches
from streams.kafka import faust_transport, faust_worker, lean_monitor, raw_schema
from streams.settings import Settings

SCORE_BYTES = 1_000
"""About the size of a RiskScore with its five contributors (the benchmark's 24 h score
history holds 1,506 KiB for 1,371 of them, sorted-set overhead included)."""
FEATURE_BYTES = 8 * len(FEATURE_NAMES)


class WorkerIO:
    """The I/O agent's per-batch round trips (module doc), produced through the worker's
    own `Outbound`."""

    def __init__(self, settings: Settings, sink: str) -> None:
        self.sink, self.prefix = sink, f"{settings.redis_namespace}io:"
        self.redis = connect(settings.redis_url)
        self.outbound = Outbound(settings)
        self.features, self.score = b"f" * FEATURE_BYTES, b"s" * SCORE_BYTES

    async def start(self) -> None:
        await self.outbound.start()

    async def stop(self) -> None:
        await self.outbound.stop()
        await self.redis.aclose()

    async def batch(self, events: Sequence[EventT]) -> None:
        by_patient: dict[str, list[str]] = {}
        for event in events:
            obs = orjson.loads(event.message.value)
            by_patient.setdefault(obs["patient_id"], []).append(obs["event_id"])
        async with self.redis.pipeline(transaction=False) as pipe:
            for patient_id, event_ids in by_patient.items():
                key = f"{self.prefix}{patient_id}"
                pipe.hset(f"{key}:ids", mapping=dict.fromkeys(event_ids, 1))
                pipe.set(f"{key}:features", self.features)
                pipe.get(f"{key}:features")
            await pipe.execute()
        # the scores stored while they are produced, as the worker does
        async with self.redis.pipeline(transaction=False) as pipe:
            for patient_id in by_patient:
                pipe.set(f"{self.prefix}{patient_id}:risk", self.score)
            await asyncio.gather(
                pipe.execute(),
                self.outbound.send_all([(self.sink, p.encode(), self.score) for p in by_patient]),
            )


def main() -> None:
    topic_name, datadir = sys.argv[1], sys.argv[2]
    sink = sys.argv[3] if len(sys.argv) > 3 else None
    bootstrap = os.environ["VIGIL_KAFKA_BOOTSTRAP"]
    app = faust.App(
        # agents started together with one BENCH_BARE_APP_ID share a consumer group
        os.environ.get("BENCH_BARE_APP_ID") or f"bench-bare-{uuid.uuid4().hex[:6]}",
        broker=f"kafka://{bootstrap}",
        datadir=datadir,
        store="memory://",
        key_serializer="raw",
        value_serializer="raw",
        consumer_auto_offset_reset="earliest",
        web_enabled=False,
    )
    seen = 0

    def consumed(events: Sequence[EventT]) -> None:
        nonlocal seen
        seen += len(events)
        # Faust turns sys.stdout into a logger; the harness reads the real stdout
        print(f"consumed {seen} {time.monotonic()}", file=sys.__stdout__, flush=True)

    if sink is None:
        topic = app.topic(topic_name, key_serializer="raw", value_serializer="raw", internal=False)

        @app.agent(topic)
        async def parse_only(stream: faust.StreamT) -> None:
            async for events in stream.take_events(500, within=0.05):
                for event in events:
                    orjson.loads(event.message.value)
                consumed(events)

    else:
        settings = Settings()
        # the worker's consumer (its fetch sizes, records handed over without a task each),
        # its lean Faust monitor and its raw record schema
        app.transport = faust_transport(app, settings)
        app.monitor = lean_monitor()
        topic = app.topic(topic_name, schema=raw_schema(), internal=False)
        io = WorkerIO(settings, sink)

        async def handle(events: Sequence[EventT]) -> None:
            await io.batch(events)
            consumed(events)

        @app.agent(topic)
        async def worker_io(stream: faust.StreamT) -> None:
            await io.start()
            try:
                await run_batches(stream, handle, settings.batch_max)
            finally:
                await io.stop()

    faust_worker(app, "warning").execute_from_commandline()


if __name__ == "__main__":
    main()
