"""End-to-end latency: producer send → the RiskScore on `risk-scores.v1`, at a paced rate.

The score topic is switched to broker time (`LogAppendTime`), so a score's record
timestamp is the moment it appeared on the topic, independent of when this process gets
round to reading it. A worker scores each patient once per batch, with the last of that
patient's events in the batch as `trigger.event_id`; every earlier event of the patient
not yet scored is covered by that score too, so its latency runs to that score.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import orjson
from aiokafka import AIOKafkaConsumer

from bench.feed import Record, paced_send
from bench.services import Services
from bench.workers import running
from streams import topics
from streams.settings import Settings

LOG_APPEND_TIME = 1
"""A record's `timestamp_type` when the broker stamped it on append."""
SETTLE_S = 30.0
"""How long after the last send the scores of every sent event may take to appear."""


@dataclass
class ScoreTracker:
    """Events sent and not yet scored, per patient in send order; latencies of the rest."""

    pending: dict[str, deque[tuple[str, float]]] = field(default_factory=dict)
    pending_ids: set[str] = field(default_factory=set)
    latencies: list[tuple[float, float]] = field(default_factory=list)
    """(send time s, latency ms) of every scored event."""
    scores: int = 0
    model_versions: dict[str, str] = field(default_factory=dict)

    def sent(self, record: Record) -> None:
        self.pending.setdefault(record.patient_id, deque()).append((record.event_id, time.time()))
        self.pending_ids.add(record.event_id)

    def scored(self, score: dict, appeared_ms: int) -> None:
        trigger = score["trigger"]["event_id"]
        self.scores += 1
        self.model_versions = score["model_versions"]
        if trigger not in self.pending_ids:
            return  # a re-published score (redelivered batch): nothing new covered
        queue = self.pending[score["patient_id"]]
        while queue:
            event_id, at_s = queue.popleft()
            self.pending_ids.discard(event_id)
            self.latencies.append((at_s, appeared_ms - at_s * 1000))
            if event_id == trigger:
                break

    def unscored(self) -> int:
        return len(self.pending_ids)


@dataclass(frozen=True)
class LatencyLevel:
    share: float
    rate: float
    seconds: float
    sent: int
    scored_events: int
    unscored_events: int
    scores: int
    p50_ms: float
    p95_ms: float
    p99_ms: float
    max_ms: float
    worker_p50_ms: float
    worker_p99_ms: float
    """From the input record's append on `vitals.v1` (broker time) to its score's
    acknowledgement, by the worker's own histogram: the rest of the end-to-end latency was
    spent before the broker had the record (the sender and the broker's intake)."""
    p50_first_quarter_ms: float
    p50_last_quarter_ms: float
    """Medians of the events sent in the first and the last quarter of the run: a last
    quarter far above the first means the worker fell behind (a queue was growing)."""
    vitals_model: str | None
    batches: dict[str, float]


async def _follow_scores(bootstrap: str, topic: str, tracker: ScoreTracker) -> None:
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest", enable_auto_commit=False
    )
    await consumer.start()
    try:
        while True:
            for records in (await consumer.getmany(timeout_ms=100)).values():
                for r in records:
                    if r.timestamp_type != LOG_APPEND_TIME:
                        raise RuntimeError(f"{topic} does not carry broker timestamps")
                    tracker.scored(orjson.loads(r.value), r.timestamp)
    finally:
        await consumer.stop()


async def _send_and_follow(
    bootstrap: str, settings: Settings, records: list[Record], rate: float, tracker: ScoreTracker
) -> float:
    """Seconds the paced send took; returns once every sent event is scored, or
    `SETTLE_S` after the last send. The score follower shares this process's one thread
    with the sender, so the load generator takes as little of the machine as it can."""
    follower = asyncio.create_task(
        _follow_scores(bootstrap, settings.topic(topics.SCORES), tracker)
    )
    try:
        started = time.monotonic()
        await paced_send(bootstrap, settings.topic(topics.VITALS), records, rate, tracker.sent)
        seconds = time.monotonic() - started
        deadline = time.monotonic() + SETTLE_S
        while tracker.unscored() and not follower.done() and time.monotonic() < deadline:
            await asyncio.sleep(0.2)
        if follower.done():
            raise RuntimeError("the score follower stopped") from follower.exception()
        return seconds
    finally:
        follower.cancel()
        await asyncio.gather(follower, return_exceptions=True)


def measure(
    services: Services, records: list[Record], share: float, rate: float, log: Path
) -> LatencyLevel:
    """One worker on a fresh prefix, fed `records` at `rate` events/s."""
    settings = services.fresh(
        f"lat{round(share * 100)}",
        configs={
            name: {"message.timestamp.type": "LogAppendTime"}
            for name in (topics.VITALS, topics.SCORES)
        },
    )
    tracker = ScoreTracker()
    with running(settings, 1, log) as (worker,):
        seconds = asyncio.run(
            _send_and_follow(services.bootstrap, settings, records, rate, tracker)
        )
        batches = worker.batches(settings.topic(topics.VITALS)).as_dict()
        in_worker = worker.latency_quantiles(settings.topic(topics.VITALS), (0.5, 0.99))
    return _summary(tracker, share, rate, seconds, len(records), batches, in_worker)


def _summary(
    tracker: ScoreTracker,
    share: float,
    rate: float,
    seconds: float,
    sent: int,
    batches: dict[str, float],
    in_worker: list[float],
) -> LatencyLevel:
    pairs = np.array(sorted(tracker.latencies) or [(np.nan, np.nan)])
    lat, quarter = pairs[:, 1], max(1, len(pairs) // 4)
    p50, p95, p99 = np.percentile(lat, [50, 95, 99])
    return LatencyLevel(
        share=share,
        rate=rate,
        seconds=seconds,
        sent=sent,
        scored_events=len(tracker.latencies),
        unscored_events=tracker.unscored(),
        scores=tracker.scores,
        p50_ms=float(p50),
        p95_ms=float(p95),
        p99_ms=float(p99),
        max_ms=float(lat.max()),
        worker_p50_ms=1000 * in_worker[0],
        worker_p99_ms=1000 * in_worker[1],
        p50_first_quarter_ms=float(np.median(lat[:quarter])),
        p50_last_quarter_ms=float(np.median(lat[-quarter:])),
        vitals_model=tracker.model_versions.get("vitals"),
        batches=batches,
    )
