"""The Faust worker: one app per topic prefix, one agent per input topic.

Order of effects for every consumed batch (the checkpoint order, as in Quix Streams):
  1. validate; invalid records become dead letters,
  2. Redis: de-duplicate by event_id and update features, reading the alert state in the
     same call (one pipelined round trip),
  3. score and decide alerts,
  4. store the scores, the API snapshot and the alert state with an outbox of the alerts
     still to publish (one pipelined round trip) while the scores and dead letters are
     produced; once that is stored, produce the alerts; wait for the broker's
     acknowledgements of all, then empty the outboxes,
  5. only then ack the batch's events (`streams/intake.py`); offsets are committed after.
A crash anywhere before 5 redelivers the batch; step 2 is idempotent and step 3 finds the
undelivered alerts in the outbox, so nothing is lost and nothing is double-counted. A
redelivered batch republishes its scores (snapshots, which consumers may see twice) and
its alerts with the same alert_id and raised_at (which consumers de-duplicate): an alert
is produced only once its outbox is stored, so what is re-published is what was decided.
A score reaches its topic at about the time the API's snapshot has it, not strictly after.
"""

from __future__ import annotations

import asyncio
import logging
import os
import tempfile
import time
from collections import Counter
from collections.abc import Awaitable, Sequence
from datetime import datetime
from functools import partial
from pathlib import Path
from typing import Any, NoReturn, Protocol

import faust
import mode
import orjson
import torch
from aiokafka import AIOKafkaClient, AIOKafkaProducer
from aiokafka.errors import KafkaError
from faust.types import TP, EventT
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from features.client import connect
from features.samples import to_us
from features.store import FeatureStore
from streams import topics
from streams.alerts import AlertPolicy
from streams.deadletters import RawRecord, dead_letter
from streams.imaging import ImagingPipeline
from streams.intake import run_batches
from streams.kafka import (
    aiokafka_options,
    faust_credentials,
    faust_transport,
    lean_monitor,
    raw_schema,
)
from streams.metrics import Metrics
from streams.notes import NotesPipeline
from streams.scoring import BatchResult, ModelSet, PatientScorer, Prepared, encode
from streams.settings import Settings
from streams.vitals import VitalsPipeline
from streams.web import WebServer, build_api

log = logging.getLogger("vigil.worker")

_RETRYABLE = (OSError, asyncio.TimeoutError, RedisConnectionError, RedisTimeoutError, KafkaError)
_BUG_TRIES = 3


def _raw(event: EventT) -> RawRecord:
    msg = event.message
    ts = msg.timestamp
    return RawRecord(
        topic=msg.topic,
        partition=msg.partition,
        offset=msg.offset,
        key=msg.key,
        value=msg.value,
        timestamp_ms=int(ts * 1000) if ts else None,
    )


EXIT_UNFINISHED = 75
"""Exit status of a worker that stopped with a batch it could not finish (EX_TEMPFAIL)."""


def _exit_unfinished(events: int, why: str) -> NoReturn:
    """Stop now, as a crash would, without committing the batch's offsets.

    A batch is acked once its handler returns (`streams/intake.py`), and Faust commits
    acked offsets as it stops; a handler that returned with the batch undone (Redis or
    Kafka down, or the agent cancelled mid-batch) would skip its events for good. Exiting
    here leaves them to be redelivered to the next worker, which is safe because every
    effect of a batch is idempotent (module doc)."""
    log.error(
        "stopping with a batch of %d events not done (%s): exiting without committing "
        "its offsets, so that it is redelivered", events, why,
    )  # fmt: skip
    logging.shutdown()
    os._exit(EXIT_UNFINISHED)


async def _all_done(*steps: Awaitable[None]) -> None:
    """Run the steps at once and return when every one has finished, raising the first
    failure: a failed step never leaves another still writing behind the batch's retry."""
    for outcome in await asyncio.gather(*steps, return_exceptions=True):
        if isinstance(outcome, BaseException):
            raise outcome


class Outbound(mode.Service):
    """The worker's one producer for outbound topics: idempotent (no duplicates from the
    producer's own retries) and acks=all."""

    def __init__(self, settings: Settings, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.settings = settings
        self._producer: AIOKafkaProducer | None = None
        self._ready: asyncio.Event | None = None

    def _event(self) -> asyncio.Event:
        if self._ready is None:
            self._ready = asyncio.Event()
        return self._ready

    async def on_start(self) -> None:
        attempt = 0
        while True:  # a broker down while the worker starts is waited for, not fatal
            producer = AIOKafkaProducer(
                **aiokafka_options(self.settings),
                acks="all",
                enable_idempotence=True,
                linger_ms=2,
                max_request_size=4 * 1024 * 1024,
            )
            try:
                await producer.start()
                break
            except KafkaError as exc:
                await producer.stop()
                attempt += 1
                delay = min(0.5 * 2**attempt, 5.0)
                log.warning("outbound producer: %s; retry %d in %.1fs", exc, attempt, delay)
                await asyncio.sleep(delay)
        self._producer = producer
        self._event().set()

    async def on_stop(self) -> None:
        if self._producer is not None:
            await self._producer.stop()

    async def send_all(self, records: list[tuple[str, bytes | None, bytes]]) -> None:
        await self._event().wait()
        assert self._producer is not None
        pending = [await self._producer.send(t, key=k, value=v) for t, k, v in records]
        await asyncio.gather(*pending)


class Pipeline(Protocol):
    """One input topic's path: `prepare` touches no shared state (validation, model
    inference); `apply` writes Redis and scores, under the worker's state lock."""

    async def prepare(self, records: list[RawRecord]) -> Prepared: ...

    async def apply(self, prepared: Prepared, topic: str) -> BatchResult: ...


class Worker:
    """Everything one worker process holds: the Faust app, Redis, metrics, pipelines."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.metrics = Metrics()
        self.redis = connect(settings.redis_url, health_check_interval=10)
        self.store = FeatureStore(
            self.redis,
            settings.redis_namespace,
            ttl_h=settings.patient_ttl_h,
            news2_lookback_h=settings.news2_lookback_h,
            history_h=settings.history_h,
        )
        self.policy = AlertPolicy.load(settings.alert_policy)
        # Process-wide: more threads than cores stall every forward pass (measured: 2.6
        # against 470 images/s at batch 1 with a busy neighbour on 2 cores).
        torch.set_num_threads(settings.torch_threads)
        self.models = ModelSet.from_settings(settings)
        self.models.refresh(force=True)
        self.scorer = PatientScorer(self.metrics, self.policy, settings.topic_prefix, self.models)
        self.models.notes.refresh(force=True)
        self.models.imaging.refresh(force=True)
        self.pipelines: dict[str, Pipeline] = {
            topics.VITALS: VitalsPipeline(self.store, self.scorer, settings.max_message_bytes),
            topics.NOTES: NotesPipeline(
                self.store, self.scorer, self.models.notes, self.metrics, settings.max_message_bytes
            ),
            topics.IMAGING: ImagingPipeline(
                self.store, self.scorer, self.models.imaging, self.metrics, settings
            ),
        }
        self.state_lock = asyncio.Lock()
        """Held from reading a patient's alert state to emptying its outbox, so that two
        agents (vitals and notes) never decide on the same state at once."""
        self.app = self._build_app()
        self._kafka_probe: AIOKafkaClient | None = None

    def _build_app(self) -> faust.App:
        s = self.settings
        datadir = Path(tempfile.gettempdir()) / "vigil-faust" / s.app_id
        datadir.mkdir(parents=True, exist_ok=True)
        app = faust.App(
            s.app_id,
            broker=f"kafka://{s.kafka_bootstrap}",
            broker_credentials=faust_credentials(s),
            datadir=str(datadir),
            store="memory://",
            key_serializer="raw",
            value_serializer="raw",
            topic_partitions=s.topic_partitions,
            topic_replication_factor=s.topic_replication,
            consumer_auto_offset_reset="earliest",
            broker_commit_interval=1.0,
            # Faust stops fetching once a stream's queue passes 1/1.25 of this and then
            # sleeps for up to a second (Consumer._wait_next_records); with the default
            # 4,096 a worker near its capacity fell into those sleeps and never caught up
            # (BENCHMARKS.md, "Continuous intake"). 32,768 records are about 8 s of a
            # worker's backlog rate, and the queue only fills while the worker is behind.
            stream_buffer_maxsize=32_768,
            broker_session_timeout=s.kafka_session_timeout_s,
            broker_heartbeat_interval=min(3.0, s.kafka_session_timeout_s / 3),
            web_enabled=True,
            web_port=s.web_port,
            monitor=lean_monitor(),
        )
        app.transport = faust_transport(app, s)
        # Outbound records go through `Outbound`, so Faust's own producer only serves its
        # internal topics.
        self.input_topics = {
            name: app.topic(
                s.topic(name),
                schema=raw_schema(),
                partitions=s.topic_partitions,
                internal=False,
            )
            for name in self.pipelines
        }
        self.outbound = Outbound(s, loop=app.loop)
        app.add_dependency(self.outbound)

        def agent_for(name: str) -> Any:
            limit = s.batch_max if name == topics.VITALS else s.notes_imaging_batch_max

            async def agent(stream: faust.StreamT) -> None:
                await run_batches(stream, partial(self.handle, name), limit)

            return agent

        for name, channel in self.input_topics.items():
            short = name.split(".")[0]
            app.agent(channel, name=f"{s.topic_prefix}{short}")(agent_for(name))
        api = build_api(self.store, self.metrics, self.health, s.api_token)
        app.web_server(WebServer(api, s.web_host, s.web_port, loop=app.loop))
        return app

    async def handle(self, name: str, events: Sequence[EventT]) -> None:
        """One batch of one input topic, in the order of effects of the module docstring."""
        topic = self.settings.topic(name)
        pipeline = self.pipelines[name]
        records = [_raw(e) for e in events]
        started = time.perf_counter()
        self.metrics.events_in.labels(topic).inc(len(records))
        self.metrics.batch_size.labels(topic).observe(len(records))
        try:
            result = await self._process(name, pipeline, records)
        except asyncio.CancelledError:
            _exit_unfinished(len(records), "cancelled")
        self._observe(topic, records, result, started)

    async def _process(
        self, name: str, pipeline: Pipeline, records: list[RawRecord], tries: int = _BUG_TRIES
    ) -> BatchResult:
        """The batch's effects, retried through outages; for a fault that lasts `tries`
        attempts, its halves are handled apart (once each), down to single events, which
        become dead letters."""
        attempt = 0
        while True:
            attempt += 1
            try:
                prepared = await pipeline.prepare(records)
                async with self.state_lock:
                    result = await pipeline.apply(prepared, name)
                    await self._publish(result)
                return result
            except _RETRYABLE as exc:
                # Kafka or Redis unavailable: wait for it, never ack what isn't done.
                if self.app.should_stop:
                    _exit_unfinished(len(records), f"{type(exc).__name__}: {exc}")
                delay = min(0.2 * 2**attempt, 5.0)
                log.warning("batch of %d failed (%s: %s); retry %d in %.1fs",
                            len(records), type(exc).__name__, exc, attempt, delay)  # fmt: skip
                await asyncio.sleep(delay)
            except Exception as exc:
                if attempt < tries:
                    log.exception("batch of %d failed; retry %d", len(records), attempt)
                    continue
                if len(records) > 1:
                    # A fault of ours (or a model's) that does not go away is most often
                    # one event's: the halves go on their own, in order, so that only the
                    # events that fail alone are parked (every effect is idempotent, so
                    # what a failed attempt did is done again harmlessly).
                    log.warning("batch of %d failed (%s: %s); handling its halves apart",
                                len(records), type(exc).__name__, exc)  # fmt: skip
                    half = len(records) // 2
                    result = BatchResult()
                    for part in (records[:half], records[half:]):
                        result.extend(await self._process(name, pipeline, part, tries=1))
                    return result
                # An event that fails alone: park it on the dead-letter topic (original
                # bytes, reason) rather than stall its partition forever.
                (record,) = records
                log.exception(
                    "event %s:%d:%d failed; dead-lettered",
                    record.topic, record.partition, record.offset,
                )  # fmt: skip
                result = BatchResult(dead=[dead_letter(record, exc)])
                await self._publish(result)
                return result

    async def _publish(self, result: BatchResult) -> None:
        """Store the scores and decisions while the broker takes the scores and dead
        letters; produce the alerts once their outboxes are stored; return once the broker
        has everything, after emptying the outboxes (a crash before that re-publishes the
        same alerts on the patient's next batch). The two round trips overlap: they were
        a fifth of a live batch one after the other (BENCHMARKS.md)."""
        t = self.settings.topic
        alerts = [(a, orjson.dumps(a)) for a in result.alerts]
        out: list[tuple[str, bytes | None, bytes]] = [
            (t(topics.SCORES), s.patient_id.encode(), raw)
            for s, raw in zip(result.scores, result.score_json, strict=True)
        ]
        out += [
            (t(topics.DEAD_LETTER), r.key.encode() if r.key else None, encode(r))
            for r in result.dead
        ]
        alerts_out = [(t(topics.ALERTS), a["patient_id"].encode(), raw) for a, raw in alerts]

        async def store_then_alert() -> None:
            await self.store.save_scores(result.stored)  # none stored: no round trip
            if alerts_out:
                await self.outbound.send_all(alerts_out)

        await _all_done(store_then_alert(), self.outbound.send_all(out))
        for topic, count in Counter(topic for topic, _, _ in out + alerts_out).items():
            self.metrics.events_out.labels(topic).inc(count)
        if alerts:
            await self.store.alerts_published(
                [
                    (a["patient_id"], to_us(datetime.fromisoformat(a["raised_at"])), raw)
                    for a, raw in alerts
                ]
            )
            for a, _ in alerts:
                self.metrics.alerts.labels(a["level"], a["kind"]).inc()

    def _observe(
        self, topic: str, records: list[RawRecord], result: BatchResult, started: float
    ) -> None:
        now = time.time()
        self.metrics.batch_seconds.labels(topic).observe(time.perf_counter() - started)
        latency = self.metrics.event_latency.labels(topic)
        for record in records:
            if record.timestamp_ms:
                latency.observe(now - record.timestamp_ms / 1000)
        for letter in result.dead:
            self.metrics.dead_letters.labels(topic, letter.error.type).inc()
        last: dict[int, int] = {}
        for record in records:
            last[record.partition] = max(record.offset, last.get(record.partition, -1))
        for partition, offset in last.items():
            highwater = self.app.consumer.highwater(TP(topic, partition))
            if highwater is not None:
                self.metrics.consumer_lag.labels(topic, str(partition)).set(
                    max(0, highwater - offset - 1)
                )

    async def health(self) -> dict[str, bool]:
        return {"redis": await self._redis_ok(), "kafka": await self._kafka_ok()}

    async def _redis_ok(self) -> bool:
        try:
            return bool(await asyncio.wait_for(self.redis.ping(), timeout=2))
        except Exception:
            return False

    async def _kafka_ok(self) -> bool:
        try:
            if self._kafka_probe is None:
                probe = AIOKafkaClient(**aiokafka_options(self.settings))
                await asyncio.wait_for(probe.bootstrap(), timeout=3)
                self._kafka_probe = probe
            await asyncio.wait_for(self._kafka_probe.fetch_all_metadata(), timeout=3)
            return True
        except Exception:
            return False
