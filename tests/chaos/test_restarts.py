"""The Kafka broker and Redis (AOF on) crash and come back mid-stream: the worker recovers
by itself and the features equal the reference recomputation."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import orjson
import pytest

from streams import launcher
from streams.app import EXIT_UNFINISHED
from tests.chaos.common import (
    accepted_events,
    assert_features_match,
    start_worker,
    topic_exists,
    ward_events,
)
from tests.helpers import group_caught_up, produce, unavailable, wait_for

pytestmark = pytest.mark.services


@pytest.fixture
def own_services(tmp_path: Path) -> Iterator[tuple[launcher.LocalServices, SimpleNamespace]]:
    """Kafka and Redis (AOF on) of this test alone, since it kills and restarts them;
    stopped on the way out."""
    try:
        local = launcher.start(tmp_path / "services", redis_appendonly=True)
    except launcher.ServiceError as exc:
        unavailable(f"this test runs its own Kafka and Redis and could not start them: {exc}")
    try:
        yield (
            local,
            SimpleNamespace(kafka_bootstrap=local.kafka_bootstrap, redis_url=local.redis_url),
        )
    finally:
        local.stop()


def test_worker_rides_out_broker_and_redis_restarts(tmp_path, own_services) -> None:
    local, services = own_services
    prefix = f"x{uuid.uuid4().hex[:8]}."
    group, topic = f"{prefix}vigil-worker", f"{prefix}vitals.v1"
    events = ward_events(10_000, seed=13)
    port = launcher.free_port()
    worker = start_worker(services, prefix, tmp_path / "worker.log", {}, port=port)
    try:
        wait_for(lambda: topic_exists(local.kafka_bootstrap, topic), 60)
        # consuming, so the kills land mid-stream
        wait_for(lambda: launcher.worker_healthy(port), 120)
        # a third before the broker's crash, the rest before Redis's: a worker draining
        # a backlog at 5,000-8,000 events/s had taken all of a half before the check. Each
        # crash lands once the worker has applied a quarter of what is to come (read from
        # Redis, which the group's commits trail by up to a commit interval)
        third = len(events) // 3
        records = [(e["patient_id"].encode(), orjson.dumps(e)) for e in events]
        namespace = f"vigil:{prefix}"
        patients = sorted({e["patient_id"] for e in events})

        def applied() -> int:
            return accepted_events(local.redis_url, namespace, patients)

        produce(local.kafka_bootstrap, topic, records[:third])
        wait_for(lambda: applied() >= third // 4, 60, 0.02)
        busy = [applied() < third]
        t0 = time.monotonic()
        local.kafka.kill(hard=True)
        time.sleep(3)
        local.kafka.restart()
        kafka_down_s = time.monotonic() - t0
        produce(local.kafka_bootstrap, topic, records[third:])
        wait_for(lambda: applied() >= third + (len(events) - third) // 4, 120, 0.02)
        busy.append(applied() < len(events))
        t0 = time.monotonic()
        local.redis.kill(hard=True)
        time.sleep(2)
        local.redis.restart()
        redis_down_s = time.monotonic() - t0
        wait_for(lambda: group_caught_up(local.kafka_bootstrap, group, topic), 300, 1)
        assert worker.poll() is None, "the worker died instead of recovering"
        assert busy == [True, True], f"a failure landed when nothing was in flight: {busy}"
        assert assert_features_match(local.redis_url, namespace, events) == len(patients)
    finally:
        launcher.stop_worker(worker)
    print(
        f"\nRestarts: {len(events)} events, {len(patients)} patients; "
        f"Kafka down {kafka_down_s:.1f}s, Redis down {redis_down_s:.1f}s; "
        "worker recovered, features equal the reference"
    )


def test_a_worker_stopped_during_a_redis_outage_leaves_its_batch_to_the_next(
    tmp_path, own_services
) -> None:
    """SIGTERM while a batch waits for Redis: the batch was never applied, so its offsets
    must not be committed on the way out; the next worker applies it."""
    local, services = own_services
    prefix = f"t{uuid.uuid4().hex[:8]}."
    group, topic = f"{prefix}vigil-worker", f"{prefix}vitals.v1"
    events = ward_events(2_000, seed=17)
    records = [(e["patient_id"].encode(), orjson.dumps(e)) for e in events]
    log = tmp_path / "worker.log"
    port = launcher.free_port()
    worker = start_worker(services, prefix, log, {}, port=port)
    try:
        wait_for(lambda: topic_exists(local.kafka_bootstrap, topic), 60)
        wait_for(lambda: launcher.worker_healthy(port), 120)
        produce(local.kafka_bootstrap, topic, records[:1_000])
        wait_for(lambda: group_caught_up(local.kafka_bootstrap, group, topic), 120, 0.5)
        local.redis.kill(hard=True)
        produce(local.kafka_bootstrap, topic, records[1_000:])
        wait_for(lambda: "failed (" in log.read_text(errors="replace"), 60, 0.5)
        worker.terminate()
        stopped_rc = worker.wait(timeout=60)
        assert stopped_rc == EXIT_UNFINISHED, f"the worker stopped with {stopped_rc}"
        local.redis.restart()
        worker = start_worker(services, prefix, log, {}, port=port)
        wait_for(lambda: group_caught_up(local.kafka_bootstrap, group, topic), 300, 1)
        patients = assert_features_match(local.redis_url, f"vigil:{prefix}", events)
    finally:
        launcher.stop_worker(worker)
    print(
        f"\nStop during an outage: {len(events)} events, {patients} patients; the worker "
        f"stopped with rc {stopped_rc} while retrying, the next one applied the batch"
    )
