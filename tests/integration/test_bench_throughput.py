"""`bench.throughput.sustained` times the workers on the whole backlog: they are frozen
while it is produced, so none of it is read before the clock starts (until 2026-11-24 two
workers were timed on the last 1-3 % of 100,000 records, BENCHMARKS.md)."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.feed import ward_events
from bench.services import Services as BenchServices
from bench.throughput import sustained
from tests.conftest import Services

pytestmark = pytest.mark.services


def test_two_workers_are_timed_on_every_record_of_the_backlog(
    services: Services, tmp_path: Path
) -> None:
    bench = BenchServices(services.kafka_bootstrap, services.redis_url, "", local=False)
    records = ward_events(50, 3_000, seed=5)
    result = sustained(bench, records, 2, tmp_path / "workers.log")
    assert result.measured_events == len(records)
    events = result.batches["mean_batch_events"] * result.batches["batches"]
    assert events == pytest.approx(len(records))
    assert 0 < result.scores <= len(records) and result.seconds > 0
