"""End-to-end latency: producer send → the RiskScore on `risk-scores.v1`, at a paced rate.

The score topic is switched to broker time (`LogAppendTime`), so a score's record
timestamp is the moment it appeared on the topic, independent of when this process gets
round to reading it. A worker scores each patient once per batch, with the last of that
patient's events in the batch as `trigger.event_id`; every earlier event of the patient
not yet scored is covered by that score too, so its latency runs to that score.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import orjson
from kafka import KafkaConsumer, KafkaProducer

from bench.feed import Record
from bench.services import Services
from bench.workers import running
from streams import topics

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
    failure: BaseException | None = None
    """What stopped the score follower, raised again by the measurement."""
    lock: threading.Lock = field(default_factory=threading.Lock)

    def sent(self, record: Record, at_s: float) -> None:
        with self.lock:
            self.pending.setdefault(record.patient_id, deque()).append((record.event_id, at_s))
            self.pending_ids.add(record.event_id)

    def scored(self, score: dict, appeared_ms: int) -> None:
        trigger = score["trigger"]["event_id"]
        with self.lock:
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
        with self.lock:
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


def _follow_scores(
    bootstrap: str, topic: str, tracker: ScoreTracker, stop: threading.Event
) -> None:
    consumer = KafkaConsumer(
        topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest", enable_auto_commit=False
    )
    try:
        while not stop.is_set():
            for records in consumer.poll(timeout_ms=100).values():
                for r in records:
                    if r.timestamp_type != LOG_APPEND_TIME:
                        raise RuntimeError(f"{topic} does not carry broker timestamps")
                    tracker.scored(orjson.loads(r.value), r.timestamp)
    except BaseException as exc:
        tracker.failure = exc
    finally:
        consumer.close()


def _paced_send(
    bootstrap: str, topic: str, records: list[Record], rate: float, tracker: ScoreTracker
) -> None:
    """Each record at its slot (i / rate after the start), its send time recorded first."""
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=0)
    try:
        started = time.monotonic()
        for i, r in enumerate(records):
            ahead = started + i / rate - time.monotonic()
            if ahead > 0:
                time.sleep(ahead)
            tracker.sent(r, time.time())
            producer.send(topic, key=r.key, value=r.value)
        producer.flush()
    finally:
        producer.close()


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
    stop = threading.Event()
    follower = threading.Thread(
        target=_follow_scores,
        args=(services.bootstrap, settings.topic(topics.SCORES), tracker, stop),
        daemon=True,
    )
    follower.start()
    try:
        with running(settings, 1, log) as (worker,):
            started = time.monotonic()
            _paced_send(services.bootstrap, settings.topic(topics.VITALS), records, rate, tracker)
            seconds = time.monotonic() - started
            deadline = time.monotonic() + SETTLE_S
            while tracker.unscored() and not tracker.failure and time.monotonic() < deadline:
                time.sleep(0.2)
            batches = worker.batches(settings.topic(topics.VITALS)).as_dict()
            in_worker = worker.latency_quantiles(settings.topic(topics.VITALS), (0.5, 0.99))
    finally:
        stop.set()
        follower.join(timeout=10)
    if tracker.failure is not None:
        raise RuntimeError("the score follower failed") from tracker.failure
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
