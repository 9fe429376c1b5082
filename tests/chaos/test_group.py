"""Two workers in one consumer group: partitions split; one dies; the other takes over."""

from __future__ import annotations

import re
import signal
import uuid

import httpx
import orjson
import pytest

from streams import launcher
from tests.chaos.common import assert_features_match, start_worker, topic_exists, ward_events
from tests.helpers import group_caught_up, produce, wait_for

pytestmark = pytest.mark.services


def consumed(port: int, topic: str) -> float:
    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=3).text
    match = re.search(rf'^vigil_events_in_total{{topic="{re.escape(topic)}"}} (\S+)$', text, re.M)
    return float(match.group(1)) if match else 0.0


def test_survivor_takes_over_the_partitions_of_a_killed_worker(services, tmp_path) -> None:
    prefix = f"g{uuid.uuid4().hex[:8]}."
    group, topic = f"{prefix}vigil-worker", f"{prefix}vitals.v1"
    events = ward_events(6_000, seed=21)
    half = len(events) // 2
    ports = launcher.free_ports(2)
    workers = [
        start_worker(services, prefix, tmp_path / f"w{i}.log", {}, port)
        for i, port in enumerate(ports)
    ]
    try:
        wait_for(lambda: topic_exists(services.kafka_bootstrap, topic), 60)
        for port in ports:
            wait_for(lambda p=port: launcher.worker_healthy(p), 60)
        produce(
            services.kafka_bootstrap,
            topic,
            [(e["patient_id"].encode(), orjson.dumps(e)) for e in events[:half]],
        )
        wait_for(lambda: group_caught_up(services.kafka_bootstrap, group, topic), 120, 1)
        split = [consumed(port, topic) for port in ports]
        assert all(n > 0 for n in split), f"partitions not split: {split}"
        assert sum(split) >= half

        workers[0].send_signal(signal.SIGKILL)
        workers[0].wait()
        produce(
            services.kafka_bootstrap,
            topic,
            [(e["patient_id"].encode(), orjson.dumps(e)) for e in events[half:]],
        )
        wait_for(lambda: group_caught_up(services.kafka_bootstrap, group, topic), 180, 1)
        survivor = consumed(ports[1], topic)
    finally:
        for w in workers:
            if w.poll() is None:
                w.terminate()
                w.wait(timeout=30)
    patients = assert_features_match(services.redis_url, f"vigil:{prefix}", events)
    print(
        f"\nGroup takeover: {len(events)} events, {patients} patients; before the kill "
        f"{split[0]:.0f} + {split[1]:.0f} consumed; the survivor consumed {survivor:.0f} in all"
    )
    assert survivor - split[1] >= len(events) - half
