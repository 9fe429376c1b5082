"""Alerts through a real worker: published once per decision, re-published with the same
id after a crash, listed by the API, printed for people by `vigil alerts tail`."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import uuid
from datetime import UTC, datetime, timedelta

import orjson
import pytest

from features.client import connect
from features.store import FeatureStore
from streams.alerts import AlertPolicy
from streams.deadletters import RawRecord
from streams.metrics import Metrics
from streams.scoring import ModelSet, PatientScorer
from streams.settings import Settings
from streams.vitals import VitalsPipeline
from tests.helpers import WorkerProcess, consume_until, event_bytes, produce

pytestmark = pytest.mark.services

NOW = datetime.now(UTC).replace(microsecond=0)


def deteriorating(pid: str) -> list[dict]:
    """Stable, then sick: NEWS2 rises from 0 to the high band."""
    rows = [
        (120, 72, 14, 98, 124, 37.0, "A", False),
        (60, 96, 21, 95, 112, 37.9, "A", False),
        (10, 128, 26, 91, 92, 39.3, "A", True),
    ]
    return [
        {
            "event_id": f"{pid}-{i}",
            "patient_id": pid,
            "unit": "ward-7",
            "observed_at": (NOW - timedelta(minutes=ago)).isoformat(),
            "heart_rate": hr,
            "respiratory_rate": rr,
            "spo2": spo2,
            "systolic_bp": sbp,
            "diastolic_bp": 70,
            "temperature": temp,
            "consciousness": avpu,
            "supplemental_o2": o2,
        }
        for i, (ago, hr, rr, spo2, sbp, temp, avpu, o2) in enumerate(rows)
    ]


def ours(values: list[dict], pid: str) -> list[dict]:
    return [v for v in values if v["patient_id"] == pid]


def test_deterioration_raises_one_alert_and_redelivery_adds_no_new_one(
    worker: WorkerProcess,
) -> None:
    pid = f"alert-{uuid.uuid4().hex[:6]}"
    events = deteriorating(pid)
    bootstrap, alerts_topic = worker.services.kafka_bootstrap, worker.topic("risk-alerts.v1")
    # one at a time, so each is its own batch and the policy sees the rise
    for event in events:
        produce(bootstrap, worker.topic("vitals.v1"), [event_bytes(event)])
        consume_until(
            bootstrap, worker.topic("risk-scores.v1"),
            lambda vs, e=event: any(v["trigger"]["event_id"] == e["event_id"] for v in vs),
        )  # fmt: skip
    alerts = ours(consume_until(bootstrap, alerts_topic, lambda vs: bool(ours(vs, pid))), pid)
    first = alerts[0]
    assert first["kind"] == "raised" and first["level"] in ("high", "critical")
    assert first["previous_level"] == "low" and first["unit"] == "ward-7"
    assert "respiratory rate 26/min" in first["reason"]
    protocol = AlertPolicy.load().recommended_actions[first["level"]]
    assert first["recommended_action"].startswith(protocol)
    assert "sepsis" in first["recommended_action"]  # fever with tachycardia
    assert first["risk"]["patient_id"] == pid

    listed = worker.get("/api/alerts", params={"since": (NOW - timedelta(hours=1)).isoformat()})
    assert first["alert_id"] in {a["alert_id"] for a in listed.json()}
    assert worker.get("/api/alerts", params={"since": "yesterday"}).status_code == 400

    # the whole log again (a consumer-side replay): same state, so no new alert
    produce(bootstrap, worker.topic("vitals.v1"), [event_bytes(e) for e in events])
    consume_until(
        bootstrap, worker.topic("risk-scores.v1"),
        lambda vs: sum(v["trigger"]["event_id"] == events[-1]["event_id"] for v in vs) >= 2,
    )  # fmt: skip
    again = ours(consume_until(bootstrap, alerts_topic, lambda vs: True, timeout_s=5), pid)
    assert {a["alert_id"] for a in again} == {first["alert_id"]}
    metrics = worker.get("/metrics").text
    assert 'vigil_alerts_total{kind="raised",level="' in metrics


def test_alert_decided_before_a_crash_is_republished_with_the_same_id(services, tmp_path) -> None:
    """The decision and its alert are stored with the score; if the worker dies before the
    broker acknowledges, the redelivered batch publishes the same alert (same alert_id)."""
    pid = f"crash-{uuid.uuid4().hex[:6]}"
    records = [
        RawRecord("vitals.v1", 0, i, pid.encode(), orjson.dumps(e))
        for i, e in enumerate(deteriorating(pid))
    ]

    async def run() -> tuple[list[dict], list[dict], list[dict]]:
        client = connect(services.redis_url)
        try:
            store = FeatureStore(client, f"vigil:crash-{uuid.uuid4().hex[:6]}:")
            models = ModelSet.from_settings(Settings(model_dir=tmp_path))
            scorer = PatientScorer(Metrics(), AlertPolicy.load(), "c.", models)
            pipeline = VitalsPipeline(store, scorer, 1 << 20)
            await pipeline.process(records[:2], "vitals.v1")
            decided = (await pipeline.process(records[2:], "vitals.v1")).alerts
            # crash: never published. The broker redelivers the last batch:
            redelivered = (await pipeline.process(records[2:], "vitals.v1")).alerts
            await store.alerts_published([(pid, 0, orjson.dumps(a)) for a in redelivered])
            after = (await pipeline.process(records[2:], "vitals.v1")).alerts
            return decided, redelivered, after
        finally:
            await client.aclose()

    decided, redelivered, after = asyncio.run(run())
    assert len(decided) == 1
    assert [a["alert_id"] for a in redelivered] == [decided[0]["alert_id"]]
    assert redelivered[0]["raised_at"] == decided[0]["raised_at"]
    assert after == []


def test_alerts_tail_prints_each_alert_once_for_people(worker: WorkerProcess) -> None:
    pid = f"tail-{uuid.uuid4().hex[:6]}"
    bootstrap, alerts_topic = worker.services.kafka_bootstrap, worker.topic("risk-alerts.v1")
    produce(bootstrap, worker.topic("vitals.v1"), [event_bytes(deteriorating(pid)[-1])])
    alert = ours(consume_until(bootstrap, alerts_topic, lambda vs: bool(ours(vs, pid))), pid)[0]
    # a duplicate on the topic, as after a crash: consumers de-duplicate by alert_id
    produce(bootstrap, alerts_topic, [(pid.encode(), orjson.dumps(alert))])
    env = {
        **os.environ,
        "VIGIL_KAFKA_BOOTSTRAP": bootstrap,
        "VIGIL_TOPIC_PREFIX": worker.prefix,
        "COLUMNS": "250",
    }
    cmd = [sys.executable, "-m", "streams.cli", "alerts", "tail", "--from-beginning"]
    shown = subprocess.run(
        [*cmd, "--seconds", "6", "--unit", "ward-7"],
        env=env, capture_output=True, text=True, timeout=60, check=True,
    ).stdout  # fmt: skip
    assert shown.count(pid) == 1
    assert "RAISED" in shown and "ward-7" in shown and "respiratory rate" in shown
    other_unit = subprocess.run(
        [*cmd, "--seconds", "4", "--unit", "ward-1"],
        env=env, capture_output=True, text=True, timeout=60, check=True,
    ).stdout  # fmt: skip
    assert pid not in other_unit
    critical_only = subprocess.run(
        [*cmd, "--seconds", "4", "--level", "critical"],
        env=env, capture_output=True, text=True, timeout=60, check=True,
    ).stdout  # fmt: skip
    assert (pid in critical_only) == (alert["level"] == "critical")
