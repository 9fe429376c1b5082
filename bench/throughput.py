"""Sustained vitals events/s of 1..n `vigil worker` processes in one consumer group.

The workers start on empty topics and the measurement waits until their group is
balanced. Then the workers are frozen (SIGSTOP) while the records are produced, and the
rate is taken from the moment they are let go (SIGCONT) to the moment their last batch is
published: a drain of the whole backlog with no rebalance and no producer competing for
the CPU, as the bare Faust ceiling drains a topic filled before it started. From a
backlog the workers take full batches, in which a patient has several events and is
scored once for all of them.

Until 2026-11-24 the workers were not frozen: they read the records while the producer
wrote them, and the rate was timed from the producer's flush. One worker had then taken
35-52 % of 100,000 records already, two workers 97-99 %, so a two-worker rate came from
the last 904-2,901 records in 0.17-0.47 s (BENCHMARKS.md, "Throughput measured on the
whole backlog").
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from bench.feed import Record
from bench.services import Services
from bench.workers import (
    Batches,
    produce_while_frozen,
    running,
    wait_batches_done,
    wait_consumed,
)
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


FROZEN_SESSION_TIMEOUT_S = 60.0
"""The workers' Kafka session timeout here: longer than the frozen workers wait for the
producer (a few seconds for 100,000 records), so that none loses its partitions."""


def sustained(services: Services, records: list[Record], workers: int, log: Path) -> Sustained:
    settings = services.fresh(f"w{workers}").model_copy(
        update={"kafka_session_timeout_s": FROZEN_SESSION_TIMEOUT_S}
    )
    topic, scores_topic = settings.topic(topics.VITALS), settings.topic(topics.SCORES)
    with running(settings, workers, log) as procs:
        already = sum(w.consumed(topic) for w in procs)  # none: the topic is empty
        produce_while_frozen([w.proc for w in procs], services.bootstrap, topic, records)
        started = time.perf_counter()
        wait_consumed(procs, topic, len(records), timeout_s=900)
        wait_batches_done(procs, topic, timeout_s=60)
        done = time.perf_counter()
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
