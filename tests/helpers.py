"""Helpers for tests that drive a real worker process over real Kafka and Redis."""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn, Protocol

import httpx
import orjson
import pytest
from kafka import KafkaConsumer, KafkaProducer

from streams import launcher


def unavailable(reason: str) -> NoReturn:
    """Skip a test whose service is missing, except in CI (VIGIL_REQUIRE_SERVICES=1): fail."""
    if os.environ.get("VIGIL_REQUIRE_SERVICES") == "1":
        pytest.fail(f"service unavailable and VIGIL_REQUIRE_SERVICES=1: {reason}")
    pytest.skip(f"service unavailable: {reason}")  # only without VIGIL_REQUIRE_SERVICES=1


class HasServices(Protocol):
    kafka_bootstrap: str
    redis_url: str


def spawn_worker(
    services: HasServices,
    prefix: str,
    port: int,
    log: Path,
    extra_env: dict[str, str] | None = None,
) -> subprocess.Popen[bytes]:
    """`vigil worker` as a child process on these services, logging to `log`."""
    env = {
        "VIGIL_KAFKA_BOOTSTRAP": services.kafka_bootstrap,
        "VIGIL_REDIS_URL": services.redis_url,
        "VIGIL_TOPIC_PREFIX": prefix,
        "VIGIL_WEB_PORT": str(port),
        "VIGIL_WEB_HOST": "127.0.0.1",
        "VIGIL_MODEL_DIR": str(log.parent / "models"),  # never a developer's model-store
        **(extra_env or {}),
    }
    return launcher.spawn_worker(env, log)


@dataclass
class WorkerProcess:
    proc: subprocess.Popen[bytes]
    prefix: str
    port: int
    services: HasServices
    log: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def topic(self, name: str) -> str:
        return f"{self.prefix}{name}"

    @classmethod
    @contextmanager
    def start(
        cls, services: HasServices, prefix: str, log: Path, extra_env: dict[str, str] | None = None
    ) -> Iterator[WorkerProcess]:
        port = launcher.free_port()
        proc = spawn_worker(services, prefix, port, log, extra_env)
        worker = cls(proc, prefix, port, services, log)
        try:
            worker.wait_healthy()
            yield worker
        finally:
            launcher.stop_worker(proc, grace_s=20)

    def wait_healthy(self, timeout_s: float = 60) -> None:
        launcher.wait_worker_healthy(self.proc, self.port, self.log, timeout_s)

    def get(self, path: str, **kwargs: Any) -> httpx.Response:
        return httpx.get(f"{self.url}{path}", timeout=5, **kwargs)


def unstarted_worker(tmp_path: Path, prefix: str) -> Any:
    """A `streams.app.Worker` built but not started (nothing talks to a broker or Redis)."""
    from streams.app import Worker
    from streams.settings import Settings

    settings = Settings(
        kafka_bootstrap="localhost:1",
        redis_url="redis://localhost:1/0",
        topic_prefix=prefix,
        model_dir=tmp_path,
    )
    return Worker(settings)


def produce(bootstrap: str, topic: str, records: list[tuple[bytes | None, bytes]]) -> None:
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", max_request_size=4 << 20)
    try:
        for key, value in records:
            producer.send(topic, key=key, value=value)
        producer.flush()
    finally:
        producer.close()


def event_bytes(event: dict[str, Any]) -> tuple[bytes, bytes]:
    return event["patient_id"].encode(), orjson.dumps(event)


def consume_until(
    bootstrap: str,
    topic: str,
    done: Callable[[list[dict[str, Any]]], bool],
    timeout_s: float = 60,
) -> list[dict[str, Any]]:
    """Read `topic` from the beginning until `done(values)` holds; fail on timeout."""
    consumer = KafkaConsumer(
        topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest", enable_auto_commit=False
    )
    values: list[dict[str, Any]] = []
    deadline = time.monotonic() + timeout_s
    try:
        while time.monotonic() < deadline:
            for records in consumer.poll(timeout_ms=500).values():
                values += [orjson.loads(r.value) for r in records]
            if done(values):
                return values
    finally:
        consumer.close()
    raise TimeoutError(f"{topic}: condition not met in {timeout_s}s; got {len(values)} records")


def score_of(worker: WorkerProcess, topic: str, events: list[dict[str, Any]]) -> dict[str, Any]:
    """Produce `events` to the worker's `topic`; the RiskScore the last of them triggered."""
    produce(worker.services.kafka_bootstrap, worker.topic(topic), [event_bytes(e) for e in events])
    trigger = events[-1]["event_id"]
    scores = consume_until(
        worker.services.kafka_bootstrap,
        worker.topic("risk-scores.v1"),
        lambda got: any(s["trigger"]["event_id"] == trigger for s in got),
    )
    (score,) = [s for s in scores if s["trigger"]["event_id"] == trigger]
    return score


def wait_for(check: Callable[[], Any], timeout_s: float = 30, every_s: float = 0.3) -> Any:
    deadline = time.monotonic() + timeout_s
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise TimeoutError("condition not met in time")
        time.sleep(every_s)


def group_progress(bootstrap: str, group: str, topic: str) -> tuple[int, int]:
    """(offsets `group` has committed, end offsets) summed over the partitions of `topic`."""
    from kafka import TopicPartition

    # never subscribes, so it only reads the group's commits and never joins it
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False)
    try:
        parts = consumer.partitions_for_topic(topic) or set()
        tps = [TopicPartition(topic, p) for p in parts]
        end = consumer.end_offsets(tps)
        committed = sum(min(consumer.committed(tp) or 0, end[tp]) for tp in tps)
        return committed, sum(end.values())
    finally:
        consumer.close()


def group_caught_up(bootstrap: str, group: str, topic: str) -> bool:
    """Whether `group` has committed the end offset of every partition of `topic`."""
    committed, end = group_progress(bootstrap, group, topic)
    return committed == end


def read_all(bootstrap: str, topic: str, settle_s: float = 3.0) -> list[dict[str, Any]]:
    """Everything on `topic` now: reads until nothing new arrives for `settle_s`."""
    consumer = KafkaConsumer(
        topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest", enable_auto_commit=False
    )
    values: list[dict[str, Any]] = []
    quiet_since = time.monotonic()
    try:
        while time.monotonic() - quiet_since < settle_s:
            batch = consumer.poll(timeout_ms=500)
            for records in batch.values():
                values += [orjson.loads(r.value) for r in records]
            if batch:
                quiet_since = time.monotonic()
    finally:
        consumer.close()
    return values
