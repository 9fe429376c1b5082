"""End-to-end latency: producer send → the RiskScore on `risk-scores.v1`, at a paced rate.

The score topic is switched to broker time (`LogAppendTime`), so a score's record
timestamp is the moment it appeared on the topic, independent of when this process gets
round to reading it. A worker scores each patient once per batch, with the last of that
patient's events in the batch as `trigger.event_id`; every earlier event of the patient
not yet scored is covered by that score too, so its latency runs to that score.

A level feeds the worker for `warmup_s` before the measured seconds, at the same rate, and
the percentiles are of the events sent after it: a worker just started took up to 0.9 s
over its first second of traffic (the broker was slow to acknowledge its first scores),
which made up the whole of the p99 at 25 % load (BENCHMARKS.md, "Latency after a
warm-up"). What the warm-up's events saw is reported beside them.
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
from bench.workers import Batches, Worker, histogram_quantiles, running, summed_buckets
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
    model_versions: dict[str, str] = field(default_factory=dict)
    measured_from: float = 0.0
    """Send time (s) from which an event is measured; earlier ones are the warm-up."""
    sent_measured: int = 0
    scores_measured: int = 0
    """Events sent after the warm-up, and the scores whose trigger is one of them."""

    def sent(self, record: Record) -> None:
        now = time.time()
        self.pending.setdefault(record.patient_id, deque()).append((record.event_id, now))
        self.pending_ids.add(record.event_id)
        self.sent_measured += now >= self.measured_from

    def scored(self, score: dict, appeared_ms: int) -> None:
        trigger = score["trigger"]["event_id"]
        self.model_versions = score["model_versions"]
        if trigger not in self.pending_ids:
            return  # a re-published score (redelivered batch): nothing new covered
        queue = self.pending[score["patient_id"]]
        while queue:
            event_id, at_s = queue.popleft()
            self.pending_ids.discard(event_id)
            self.latencies.append((at_s, appeared_ms - at_s * 1000))
            if event_id == trigger:
                self.scores_measured += at_s >= self.measured_from
                break

    def unscored(self) -> int:
        return len(self.pending_ids)


@dataclass(frozen=True)
class LatencyLevel:
    share: float
    rate: float
    workers: int
    """In one consumer group, sharing the machine."""
    seconds: float
    """The paced send, warm-up included."""
    warmup_s: float
    sent: int
    """Events sent after the warm-up: the ones the percentiles below are of."""
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
    acknowledgement, by the workers' own histograms (what they observed after the warm-up):
    the rest of the end-to-end latency was spent before the broker had the record (the
    sender and the broker's intake)."""
    warmup_p50_ms: float
    warmup_p99_ms: float
    """End to end, of the events sent during the warm-up (a worker's first traffic)."""
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
    bootstrap: str,
    settings: Settings,
    records: list[Record],
    rate: float,
    tracker: ScoreTracker,
    workers: list[Worker],
    warmup_s: float,
) -> tuple[float, list[tuple[float, float]]]:
    """Seconds the paced send took and the workers' latency histogram as the warm-up
    ended; returns once every sent event is scored, or `SETTLE_S` after the last send.
    The score follower shares this process's one thread with the sender, so the load
    generator takes as little of the machine as it can."""
    follower = asyncio.create_task(
        _follow_scores(bootstrap, settings.topic(topics.SCORES), tracker)
    )
    vitals = settings.topic(topics.VITALS)

    async def histogram_after_warmup() -> list[tuple[float, float]]:
        await asyncio.sleep(warmup_s)
        return await asyncio.to_thread(summed_buckets, workers, vitals)

    tracker.measured_from = time.time() + warmup_s
    started = time.monotonic()
    warmed = asyncio.create_task(histogram_after_warmup())
    try:
        await paced_send(bootstrap, vitals, records, rate, tracker.sent)
        seconds = time.monotonic() - started
        deadline = time.monotonic() + SETTLE_S
        while tracker.unscored() and not follower.done() and time.monotonic() < deadline:
            await asyncio.sleep(0.2)
        if follower.done():
            raise RuntimeError("the score follower stopped") from follower.exception()
        return seconds, await warmed
    finally:
        follower.cancel()
        warmed.cancel()
        await asyncio.gather(follower, warmed, return_exceptions=True)


def measure(
    services: Services,
    records: list[Record],
    share: float,
    rate: float,
    log: Path,
    warmup_s: float = 0.0,
    workers: int = 1,
) -> LatencyLevel:
    """`workers` in one group on a fresh prefix, fed `records` at `rate` events/s; the
    events of the first `warmup_s` are not measured."""
    settings = services.fresh(
        f"lat{round(share * 100)}",
        configs={
            name: {"message.timestamp.type": "LogAppendTime"}
            for name in (topics.VITALS, topics.SCORES)
        },
    )
    tracker = ScoreTracker()
    vitals = settings.topic(topics.VITALS)
    with running(settings, workers, log) as procs:
        seconds, warmed = asyncio.run(
            _send_and_follow(services.bootstrap, settings, records, rate, tracker, procs, warmup_s)
        )
        batches = Batches.total([w.batches(vitals) for w in procs]).as_dict()
        in_worker = histogram_quantiles(summed_buckets(procs, vitals), (0.5, 0.99), warmed)
    return _summary(tracker, share, rate, workers, seconds, warmup_s, batches, in_worker)


def _summary(
    tracker: ScoreTracker,
    share: float,
    rate: float,
    workers: int,
    seconds: float,
    warmup_s: float,
    batches: dict[str, float],
    in_worker: list[float],
) -> LatencyLevel:
    pairs = np.array(sorted(tracker.latencies)).reshape(-1, 2)
    warm = pairs[:, 0] < tracker.measured_from
    measured = pairs[~warm, 1]
    lat = measured if len(measured) else np.array([np.nan])
    cold = pairs[warm, 1] if warm.any() else np.array([np.nan])
    quarter = max(1, len(lat) // 4)
    p50, p95, p99 = np.percentile(lat, [50, 95, 99])
    return LatencyLevel(
        share=share,
        rate=rate,
        workers=workers,
        seconds=seconds,
        warmup_s=warmup_s,
        sent=tracker.sent_measured,
        scored_events=len(measured),
        unscored_events=tracker.unscored(),
        scores=tracker.scores_measured,
        p50_ms=float(p50),
        p95_ms=float(p95),
        p99_ms=float(p99),
        max_ms=float(lat.max()),
        worker_p50_ms=1000 * in_worker[0],
        worker_p99_ms=1000 * in_worker[1],
        warmup_p50_ms=float(np.percentile(cold, 50)),
        warmup_p99_ms=float(np.percentile(cold, 99)),
        p50_first_quarter_ms=float(np.median(lat[:quarter])),
        p50_last_quarter_ms=float(np.median(lat[-quarter:])),
        vitals_model=tracker.model_versions.get("vitals"),
        batches=batches,
    )
