"""The worker's publish step: the scores go to the broker while Redis stores them and the
alert decisions; an alert goes only once its outbox is stored."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

import pytest
from redis.exceptions import ConnectionError as RedisConnectionError

from streams.app import Worker
from streams.deadletters import RawRecord, dead_letter
from streams.scoring import BatchResult
from streams.settings import Settings

ALERT = {"patient_id": "p-1", "raised_at": "2026-11-25T06:00:00+00:00", "level": "high",
         "kind": "raised"}  # fmt: skip


@pytest.fixture
def worker() -> Worker:
    return Worker(Settings(topic_prefix="u.", redis_url="redis://127.0.0.1:1/0"))


def batch() -> BatchResult:
    return BatchResult(
        scores=[SimpleNamespace(patient_id="p-1")],  # type: ignore[list-item]
        score_json=[b"{}"],
        alerts=[ALERT],
        stored=[SimpleNamespace(patient_id="p-1")],  # type: ignore[list-item]
    )


def record_io(worker: Worker, monkeypatch: pytest.MonkeyPatch, save_fails: bool = False) -> list:
    log: list[Any] = []

    async def save_scores(updates: list) -> None:
        log.append("storing")
        await asyncio.sleep(0.05)
        if save_fails:
            raise RedisConnectionError("redis restarting")
        log.append("stored")

    async def send_all(records: list) -> None:
        log.append(("produced", sorted({topic for topic, _, _ in records})))

    async def alerts_published(alerts: list) -> None:
        log.append("outboxes emptied")

    monkeypatch.setattr(worker.store, "save_scores", save_scores)
    monkeypatch.setattr(worker.store, "alerts_published", alerts_published)
    monkeypatch.setattr(worker.outbound, "send_all", send_all)
    return log


def test_scores_go_while_stored_and_alerts_only_once_stored(worker, monkeypatch) -> None:
    log = record_io(worker, monkeypatch)
    asyncio.run(worker._publish(batch()))
    assert log == [
        "storing",
        ("produced", ["u.risk-scores.v1"]),
        "stored",
        ("produced", ["u.risk-alerts.v1"]),
        "outboxes emptied",
    ]


def test_a_failed_store_produces_no_alert_and_fails_the_batch(worker, monkeypatch) -> None:
    log = record_io(worker, monkeypatch, save_fails=True)
    with pytest.raises(RedisConnectionError):
        asyncio.run(worker._publish(batch()))
    assert log == ["storing", ("produced", ["u.risk-scores.v1"])]


def test_a_batch_of_only_dead_letters_touches_no_redis(worker, monkeypatch) -> None:
    """The worker's Redis URL points where nothing listens: any round trip would fail."""
    produced: list = []

    async def send_all(records: list) -> None:
        produced.extend(topic for topic, _, _ in records)

    monkeypatch.setattr(worker.outbound, "send_all", send_all)
    record = RawRecord("u.vitals.v1", 0, 7, b"p-1", b"not json")
    asyncio.run(worker._publish(BatchResult(dead=[dead_letter(record, ValueError("bad"))])))
    assert produced == ["u.dead-letter.v1"]
