"""What the worker does when a batch fails: wait out outages, park persistent faults."""

from __future__ import annotations

import asyncio
import time
from types import SimpleNamespace

import pytest
from redis.exceptions import ConnectionError as RedisConnectionError

from streams.app import Worker
from streams.scoring import BatchResult, Prepared
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
    assert calls == [2, 2, 2, 1, 1]  # three tries, then each half once
    assert [d.offset for result in published for d in result.dead] == [0, 1]
    dead = published[0].dead[0]
    assert (dead.error.type, dead.error.message) == ("ValueError", "model exploded")
    assert dead.payload == "{}"


def test_only_the_event_that_fails_alone_is_dead_lettered(worker, monkeypatch) -> None:
    done, published = [], []

    async def poisoned(records):
        if any(r.offset == 5 for r in records):
            raise ValueError("model exploded")
        done.extend(r.offset for r in records)
        return Prepared(BatchResult(), None)

    async def apply(prepared, topic):
        return prepared.result

    async def publish(result):
        published.append(result)

    monkeypatch.setattr(worker.pipelines["vitals.v1"], "prepare", poisoned)
    monkeypatch.setattr(worker.pipelines["vitals.v1"], "apply", apply)
    monkeypatch.setattr(worker, "_publish", publish)
    asyncio.run(worker.handle("vitals.v1", events(8)))
    assert done == [0, 1, 2, 3, 4, 6, 7]  # in order, each once
    assert [d.offset for result in published for d in result.dead] == [5]
