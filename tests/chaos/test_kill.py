"""Chaos tier: workers SIGKILLed mid-stream, Redis wiped. Nothing may be lost or counted twice.

Each test prints its run's counts (events sent, scored, alerts, duplicates).
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
import uuid
from collections import defaultdict

import orjson
import pytest
import redis

from streams.alerts import AlertState
from tests.chaos.common import (
    accepted_events,
    assert_features_match,
    no_suppression_policy,
    start_worker,
    topic_exists,
    ward_events,
)
from tests.helpers import group_caught_up, produce, read_all, wait_for

pytestmark = pytest.mark.services


def test_sigkilled_workers_lose_nothing_and_alerts_dedupe_by_id(services, tmp_path) -> None:
    prefix = f"k{uuid.uuid4().hex[:8]}."
    namespace = f"vigil:{prefix}"
    events = ward_events(20_000, seed=3)
    env = {"VIGIL_ALERT_POLICY": str(no_suppression_policy(tmp_path)), "VIGIL_BATCH_MAX": "300"}
    rng = random.Random(5)
    log = tmp_path / "worker.log"

    # first worker creates the topics; then the whole stream goes in at once
    first = start_worker(services, prefix, log, env)
    wait_for(lambda: topic_exists(services.kafka_bootstrap, f"{prefix}vitals.v1"), 60)
    produce(
        services.kafka_bootstrap,
        f"{prefix}vitals.v1",
        [(e["patient_id"].encode(), orjson.dumps(e)) for e in events],
    )
    # each kill lands once the workers have applied another sixth of the stream to Redis,
    # so every one of them interrupts work in progress: half the stream is still to come
    # after the last. Progress is read from Redis, not from the group's commits, which trail
    # the work by up to a commit interval (a fast worker had finished the second half before
    # its commits showed the first)
    kills, proc, landed = 0, first, []
    group, topic = f"{prefix}vigil-worker", f"{prefix}vitals.v1"
    patients = sorted({e["patient_id"] for e in events})
    for sixth in (1, 2, 3):
        wait_for(
            lambda q=sixth: (
                accepted_events(services.redis_url, namespace, patients) >= q * len(events) // 6
            ),
            timeout_s=180,
            every_s=0.1,
        )
        time.sleep(rng.uniform(0, 0.2))
        # the events applied when the kill lands (the group's commits are at most that)
        landed.append(accepted_events(services.redis_url, namespace, patients))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        kills += 1
        proc = start_worker(services, prefix, log, env)
    try:
        wait_for(lambda: group_caught_up(services.kafka_bootstrap, group, topic), 300, 1)
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    assert all(n < len(events) for n in landed), f"a kill landed after the stream: {landed}"

    assert assert_features_match(services.redis_url, namespace, events) == len(patients)

    scores = read_all(services.kafka_bootstrap, f"{prefix}risk-scores.v1")
    alerts = read_all(services.kafka_bootstrap, f"{prefix}risk-alerts.v1")
    copies: dict[str, list[dict]] = defaultdict(list)
    for a in alerts:
        copies[a["alert_id"]].append(a)
    for alert_id, same in copies.items():
        assert len({(a["kind"], a["level"], a["raised_at"]) for a in same}) == 1, alert_id
    client = redis.Redis.from_url(services.redis_url)
    unique = [same[0] for same in copies.values()]
    per_patient: dict[str, list[dict]] = defaultdict(list)
    for a in unique:
        per_patient[a["patient_id"]].append(a)
    for pid in patients:
        raw = client.hmget(f"{namespace}p:{{{pid}}}:alert", "state", "outbox")
        state, outbox = AlertState.from_json(raw[0]), raw[1]
        assert outbox is None, f"{pid}: alerts left unpublished"
        published = sorted(per_patient[pid], key=lambda a: (a["risk"]["as_of"], a["raised_at"]))
        if state.alerted == "low":
            assert not published or published[-1]["kind"] == "cleared", pid
        else:
            assert published and published[-1]["level"] == state.alerted, pid
    client.close()
    print(
        f"\nSIGKILL chaos: {len(events)} events sent to {len(patients)} patients, {kills} kills "
        f"(after {landed} events were applied), "
        f"{len(scores)} scores, {len(unique)} alerts ({len(alerts) - len(unique)} duplicate "
        f"copies on the topic, all sharing their alert_id)"
    )
    assert kills == 3 and unique


def test_features_are_rebuilt_from_kafka_after_redis_is_wiped(services, tmp_path) -> None:
    prefix = f"r{uuid.uuid4().hex[:8]}."
    namespace = f"vigil:{prefix}"
    events = ward_events(3_000, seed=9)
    env = {
        **os.environ,
        "VIGIL_KAFKA_BOOTSTRAP": services.kafka_bootstrap,
        "VIGIL_REDIS_URL": services.redis_url,
        "VIGIL_TOPIC_PREFIX": prefix,
    }
    proc = start_worker(services, prefix, tmp_path / "worker.log", {})
    try:
        wait_for(lambda: topic_exists(services.kafka_bootstrap, f"{prefix}vitals.v1"), 60)
        produce(
            services.kafka_bootstrap,
            f"{prefix}vitals.v1",
            [(e["patient_id"].encode(), orjson.dumps(e)) for e in events]
            + [(b"p-bad", b"not json")],
        )
        wait_for(
            lambda: group_caught_up(
                services.kafka_bootstrap, f"{prefix}vigil-worker", f"{prefix}vitals.v1"
            ),
            timeout_s=120,
            every_s=1,
        )
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    assert_features_match(services.redis_url, namespace, events)

    client = redis.Redis.from_url(services.redis_url)
    wiped = 0
    for key in client.scan_iter(f"{namespace}*"):
        wiped += client.delete(key)
    client.close()
    assert wiped > 0

    rebuild = subprocess.run(
        [sys.executable, "-m", "streams.cli", "rebuild-features"],
        env=env, capture_output=True, text=True, timeout=300, check=True,
    )  # fmt: skip
    patients = assert_features_match(services.redis_url, namespace, events)
    assert f"rebuilt {patients} patients from {len(events) + 1} records (1 invalid" in (
        rebuild.stderr
    )
    # a second run changes nothing
    subprocess.run(
        [sys.executable, "-m", "streams.cli", "rebuild-features"],
        env=env, capture_output=True, text=True, timeout=300, check=True,
    )  # fmt: skip
    assert_features_match(services.redis_url, namespace, events)
    print(f"\nRebuild: {len(events)} events, {patients} patients, {wiped} keys wiped and rebuilt")
