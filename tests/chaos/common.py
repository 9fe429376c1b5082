"""Shared by the chaos tests: a simulated ward, worker processes, the reference check."""

from __future__ import annotations

import asyncio
import math
import subprocess
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path

import redis
import redis.asyncio as aioredis
import yaml

from features import reference
from features.samples import VitalsSample
from features.store import FeatureStore, PatientKeys
from features.windows import FEATURE_NAMES
from streams import launcher
from streams.alerts import DEFAULT_POLICY
from streams.events import VitalsObservation
from streams.simulator import ward_feed
from tests.helpers import spawn_worker

PATIENTS = 100


def ward_events(n: int, seed: int) -> list[dict]:
    """The first `n` events of a simulated ward (a patient sends about once a minute; the
    feed runs a quarter longer than that, for the patients who leave early)."""
    hours = 1.25 * n * 60 / PATIENTS / 3600 + 0.05
    start = datetime.now(UTC) - timedelta(hours=hours + 0.5)
    feed = ward_feed(PATIENTS, 0.4, start, hours, 60, seed)
    events = [event for event, _ in zip(feed, range(n), strict=False)]
    assert len(events) == n, f"the simulated ward gave {len(events)} of {n} events"
    return events


def start_worker(
    services, prefix: str, log: Path, env_extra: dict[str, str], port: int | None = None
) -> subprocess.Popen:
    """A worker that a killed peer's partitions reach quickly (6 s session timeout)."""
    return spawn_worker(
        services,
        prefix,
        port or launcher.free_port(),
        log,
        {"VIGIL_KAFKA_SESSION_TIMEOUT_S": "6", **env_extra},
    )


def no_suppression_policy(tmp_path: Path) -> Path:
    """Every change of alert state then implies a published alert, which the test checks."""
    raw = yaml.safe_load(DEFAULT_POLICY.read_text())
    raw["suppress_minutes"] = 0
    raw["clear_dwell_minutes"] = 10
    path = tmp_path / "policy.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def by_patient(events: list[dict]) -> dict[str, list[VitalsSample]]:
    logs: dict[str, list[VitalsSample]] = defaultdict(list)
    for e in events:
        logs[e["patient_id"]].append(VitalsSample.from_event(VitalsObservation.model_validate(e)))
    return logs


def read_features(redis_url: str, namespace: str, patients: list[str]) -> dict:
    async def run() -> dict:
        client = aioredis.Redis.from_url(redis_url)
        try:
            return await FeatureStore(client, namespace).read_features(patients)
        finally:
            await client.aclose()

    return asyncio.run(run())


def assert_features_match(redis_url: str, namespace: str, events: list[dict]) -> int:
    logs = by_patient(events)
    stored = read_features(redis_url, namespace, sorted(logs))
    client = redis.Redis.from_url(redis_url)
    for pid, log in logs.items():
        as_of, expected, news2_inputs = reference.compute(log)
        pf = stored[pid]
        assert pf.as_of_us == as_of, pid
        for name in FEATURE_NAMES:
            got, want = pf.features[name], expected[name]
            assert (got is None and want is None) or math.isclose(
                got, want, rel_tol=1e-6, abs_tol=1e-9
            ), (pid, name, got, want)
        assert pf.news2_inputs == news2_inputs
        # every event reflected exactly once
        meta = client.hgetall(PatientKeys(namespace, pid).meta)
        assert int(meta[b"accepted"]) == len({s.event_id for s in log}), pid
    client.close()
    return len(logs)


def accepted_events(redis_url: str, namespace: str, patients: list[str]) -> int:
    """How many distinct events the workers have applied to these patients' features: the
    progress of the processing itself, which the group's commits trail by up to a commit
    interval."""
    client = redis.Redis.from_url(redis_url)
    try:
        pipe = client.pipeline(transaction=False)
        for pid in patients:
            pipe.hget(PatientKeys(namespace, pid).meta, "accepted")
        return sum(int(n or 0) for n in pipe.execute())
    finally:
        client.close()


def topic_exists(bootstrap: str, topic: str) -> bool:
    from kafka import KafkaConsumer

    consumer = KafkaConsumer(bootstrap_servers=bootstrap)
    try:
        return topic in consumer.topics()
    finally:
        consumer.close()
