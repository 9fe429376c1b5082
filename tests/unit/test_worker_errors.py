"""What the worker does when a batch fails: wait out outages, park persistent faults."""

from __future__ import annotations

import asyncio
import time
from types import SimpleNamespace

import pytest
from redis.exceptions import ConnectionError as RedisConnectionError

from streams.app import Worker
from streams.scoring import BatchResult
from streams.settings import Settings


def events(n: int) -> list[SimpleNamespace]:
    return [
        SimpleNamespace(
            message=SimpleNamespace(
                topic="u.vitals.v1",
                partition=0,
                offset=i,
                key=b"p-1",
                value=b"{}",
                timestamp=time.time(),
            )
        )
        for i in range(n)
    ]


@pytest.fixture
def worker(monkeypatch) -> Worker:
    w = Worker(Settings(topic_prefix="u.", redis_url="redis://127.0.0.1:1/0"))
    monkeypatch.setattr(w, "_observe", lambda *args: None)  # needs a started Kafka consumer
    return w


def test_outage_is_retried_until_the_batch_succeeds(worker, monkeypatch) -> None:
    calls, published = [], []

    async def flaky(prepared, topic):
        calls.append(len(prepared.work[0]) + len(prepared.result.dead))
        if len(calls) < 3:
            raise RedisConnectionError("redis restarting")
        return BatchResult()

    async def publish(result):
        published.append(result)

    monkeypatch.setattr(worker.pipelines["vitals.v1"], "apply", flaky)
    monkeypatch.setattr(worker, "_publish", publish)
    asyncio.run(worker.handle("vitals.v1", events(4)))
    assert calls == [4, 4, 4]
    assert len(published) == 1 and published[0].dead == []


def test_a_batch_that_keeps_failing_is_dead_lettered_not_dropped(worker, monkeypatch) -> None:
    calls, published = [], []

    async def broken(records):
        calls.append(len(records))
        raise ValueError("model exploded")

    async def publish(result):
        published.append(result)

    monkeypatch.setattr(worker.pipelines["ehr-notes.v1"], "prepare", broken)
    monkeypatch.setattr(worker, "_publish", publish)
    asyncio.run(worker.handle("ehr-notes.v1", events(2)))
    assert len(calls) == 3
    (result,) = published
    assert [d.offset for d in result.dead] == [0, 1]
    assert {d.error.type for d in result.dead} == {"ValueError"}
    assert result.dead[0].error.message == "model exploded"
    assert result.dead[0].payload == "{}"
