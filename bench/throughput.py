"""Sustained vitals events/s of 1..n `vigil worker` processes in one consumer group.

The workers start on empty topics and the measurement waits until their group is
balanced; then the records are produced as fast as the client goes and the rate is taken
from the moment the producer has flushed (every record on the broker, the workers behind)
to the moment the group has taken the last record: a backlog drain with no rebalance and
no producer competing for the CPU. From a backlog the workers take full batches, in which
a patient has several events and is scored once for all of them.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from bench.feed import Record, produce
from bench.services import Services
from bench.workers import Batches, running, wait_batches_done, wait_consumed
from streams import topics


@dataclass(frozen=True)
class Sustained:
    workers: int
    events: int
    measured_events: int
    seconds: float
    vitals_model: str | None
    scores: int
    """RiskScores the workers published for these events (one per patient per batch)."""
    batches: dict[str, float]

    @property
    def events_per_s(self) -> float:
        return self.measured_events / self.seconds


def sustained(services: Services, records: list[Record], workers: int, log: Path) -> Sustained:
    settings = services.fresh(f"w{workers}")
    topic, scores_topic = settings.topic(topics.VITALS), settings.topic(topics.SCORES)
    with running(settings, workers, log) as procs:
        produce(services.bootstrap, topic, records)
        started = time.perf_counter()
        already = sum(w.consumed(topic) for w in procs)
        done, _ = wait_consumed(procs, topic, len(records), timeout_s=900)
        wait_batches_done(procs, topic, timeout_s=60)
        scores = sum(w.sample("vigil_events_out_total", scores_topic) for w in procs)
        return Sustained(
            workers=workers,
            events=len(records),
            measured_events=len(records) - int(already),
            seconds=done - started,
            vitals_model=procs[0].vitals_model(),
            scores=int(scores),
            batches=Batches.total([w.batches(topic) for w in procs]).as_dict(),
        )
