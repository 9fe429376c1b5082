"""End to end through a real `vigil worker` process, real Kafka and real Redis."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import pytest

from features import reference
from features.samples import VitalsSample
from streams.events import VitalsObservation
from tests.helpers import (
    WorkerProcess,
    consume_until,
    event_bytes,
    produce,
    read_all,
    wait_for,
)

pytestmark = pytest.mark.services

NOW = datetime.now(UTC).replace(microsecond=0)


def vitals_event(pid: str, minutes_ago: float, **fields: object) -> dict[str, object]:
    return {
        "event_id": f"{pid}-{uuid.uuid4().hex[:8]}",
        "patient_id": pid,
        "observed_at": (NOW - timedelta(minutes=minutes_ago)).isoformat(),
        **fields,
    }


def latest_by_trigger(scores: list[dict], events: dict[str, dict]) -> dict[str, dict]:
    """Each patient's score triggered by its last event, once they all exist."""
    last = {}
    for s in scores:
        pid = s["patient_id"]
        if pid in events and s["trigger"]["event_id"] == events[pid]["event_id"]:
            last[pid] = s
    return last


def test_vitals_are_scored_with_news2_and_features(worker: WorkerProcess) -> None:
    run = uuid.uuid4().hex[:6]
    stable, sick, partial = f"stable-{run}", f"sick-{run}", f"partial-{run}"
    log = {
        stable: [
            vitals_event(stable, 90, heart_rate=72, respiratory_rate=14, spo2=98, temperature=36.9,
                         systolic_bp=124, diastolic_bp=78, consciousness="A"),
            vitals_event(stable, 30, heart_rate=75, respiratory_rate=15, spo2=97,
                         systolic_bp=122, diastolic_bp=76),
        ],
        sick: [
            vitals_event(sick, 300, heart_rate=80, respiratory_rate=16, temperature=37.0,
                         consciousness="A"),  # over 4 h old by the end: carried forward? no
            vitals_event(sick, 60, heart_rate=118, respiratory_rate=23, spo2=93,
                         supplemental_o2=True, systolic_bp=98, diastolic_bp=60),
            vitals_event(sick, 10, heart_rate=134, respiratory_rate=26, spo2=91,
                         supplemental_o2=True, systolic_bp=88, diastolic_bp=55,
                         temperature=39.4, consciousness="C"),
        ],
        partial: [vitals_event(partial, 5, heart_rate=128)],
    }  # fmt: skip
    produce(
        worker.services.kafka_bootstrap,
        worker.topic("vitals.v1"),
        [event_bytes(e) for events in log.values() for e in events],
    )
    last_events = {pid: events[-1] for pid, events in log.items()}
    scores = consume_until(
        worker.services.kafka_bootstrap,
        worker.topic("risk-scores.v1"),
        lambda values: len(latest_by_trigger(values, last_events)) == 3,
    )
    latest = latest_by_trigger(scores, last_events)

    s = latest[stable]["news2"]
    assert (s["total"], s["band"], s["missing"]) == (0, "low", [])
    k = latest[sick]["news2"]
    # rr 26 →3, spo2 91 →3, o2 →2, sbp 88 →3, hr 134 →3, C →3, temp 39.4 →2
    assert k["components"] == {"respiratory_rate": 3, "spo2": 3, "supplemental_o2": 2,
                               "systolic_bp": 3, "heart_rate": 3, "consciousness": 3,
                               "temperature": 2}  # fmt: skip
    assert (k["total"], k["band"], k["single_param_3"]) == (19, "high", True)
    p = latest[partial]["news2"]
    assert (p["total"], p["band"]) == (2, "low")
    assert "respiratory_rate" in p["missing"]

    sick_score = latest[sick]
    assert sick_score["risk_level"] in ("high", "critical")
    assert sick_score["as_of"].startswith((NOW - timedelta(minutes=10)).strftime("%Y-%m-%dT%H:%M"))
    assert sick_score["model_versions"]["vitals"] == "news2-fallback-1"
    assert 0 <= sick_score["scores"]["vitals"] <= 1
    assert sick_score["scores"]["fused"] == sick_score["scores"]["vitals"]
    assert sick_score["scores"]["notes"] is None and sick_score["scores"]["imaging"] is None
    assert sick_score["contributors"][0]["contribution"] == 3.0

    detail = wait_for(lambda: _settled(worker, sick, last_events[sick]["event_id"]))
    samples = [VitalsSample.from_event(VitalsObservation.model_validate(e)) for e in log[sick]]
    _, expected, _ = reference.compute(samples)
    assert detail["features"].keys() == expected.keys()
    for name, value in expected.items():
        got = detail["features"][name]
        assert (got is None and value is None) or got == pytest.approx(value, rel=1e-6), name
    assert detail["features"]["hr_count_6h"] == 3
    assert detail["features"]["map_last_1h"] == pytest.approx((88 + 2 * 55) / 3)
    assert detail["features"]["shock_index_max_24h"] == pytest.approx(134 / 88)
    assert detail["history"][0]["trigger"]["event_id"] == last_events[sick]["event_id"]

    ranked = worker.get("/api/patients").json()
    ours = [r["patient_id"] for r in ranked if r["patient_id"] in log]
    assert ours[0] == sick
    fused = [r["scores"]["fused"] for r in ranked]
    assert fused == sorted(fused, reverse=True)

    assert worker.get("/api/patients/nobody-here").status_code == 404
    metrics = worker.get("/metrics").text
    assert f'vigil_events_in_total{{topic="{worker.topic("vitals.v1")}"}}' in metrics
    assert "vigil_batch_processing_seconds_bucket" in metrics
    assert 'vigil_consumer_lag{partition="' in metrics
    assert 'vigil_model_seconds_count{model="news2-fallback-1"}' in metrics
    assert worker.get("/health").json() == {"status": "ok"}

    # Each score reaches the topic once (no batch was redelivered here), and the worker's
    # count of what it published agrees with the topic.
    scores_topic = worker.topic("risk-scores.v1")
    published = read_all(worker.services.kafka_bootstrap, scores_topic)
    keys = [(s["patient_id"], s["trigger"]["event_id"]) for s in published]
    assert len(keys) == len(set(keys)) > 0
    counted = re.search(
        rf'^vigil_events_out_total{{topic="{re.escape(scores_topic)}"}} (\S+)$',
        worker.get("/metrics").text,
        re.M,
    )
    assert counted is not None and float(counted.group(1)) == len(published)


def _settled(worker: WorkerProcess, pid: str, event_id: str) -> dict | None:
    res = worker.get(f"/api/patients/{pid}")
    if res.status_code != 200:
        return None
    body = res.json()
    return body if body["risk"]["trigger"]["event_id"] == event_id else None


def test_bad_input_goes_to_dead_letter_and_processing_goes_on(worker: WorkerProcess) -> None:
    pid = f"bad-{uuid.uuid4().hex[:6]}"
    key = pid.encode()
    good = vitals_event(pid, 1, heart_rate=88, respiratory_rate=18)
    bad: dict[str, bytes] = {
        "invalid_json": b'{"event_id": "x", "patient_id": ',
        "wrong_type": orjson.dumps(vitals_event(pid, 2, heart_rate="fast")),
        "string_number": orjson.dumps(vitals_event(pid, 2, heart_rate="72")),
        "out_of_range": orjson.dumps(vitals_event(pid, 2, spo2=120)),
        "missing_field": orjson.dumps({"event_id": "m1", "patient_id": pid, "heart_rate": 80}),
        "no_measurement": orjson.dumps(vitals_event(pid, 2, unit="ward-1")),
        "naive_timestamp": orjson.dumps(
            {
                "event_id": "n1",
                "patient_id": pid,
                "observed_at": "2026-11-22T10:00:00",
                "heart_rate": 80,
            }
        ),
        "not_utf8": b'{"event_id": "\xff\xfe", "patient_id": "' + key + b'"}',
        "too_large": orjson.dumps(vitals_event(pid, 2, heart_rate=80, note="x" * (1 << 20))),
    }
    produce(
        worker.services.kafka_bootstrap,
        worker.topic("vitals.v1"),
        [(key, value) for value in bad.values()] + [event_bytes(good)],
    )
    letters = consume_until(
        worker.services.kafka_bootstrap,
        worker.topic("dead-letter.v1"),
        lambda values: len([v for v in values if v["key"] == pid]) >= len(bad),
    )
    ours = [v for v in letters if v["key"] == pid]
    assert len(ours) == len(bad)
    types = [v["error"]["type"] for v in ours]
    assert types.count("invalid_json") == 1
    assert types.count("not_utf8") == 1
    assert types.count("too_large") == 1
    assert types.count("validation") == len(bad) - 3
    for letter in ours:
        assert letter["topic"] == worker.topic("vitals.v1")
        assert letter["error"]["message"]
        assert letter["offset"] >= 0
    by_message = " | ".join(v["error"]["message"] for v in ours)
    assert "heart_rate" in by_message and "spo2" in by_message and "observed_at" in by_message
    not_utf8 = next(v for v in ours if v["error"]["type"] == "not_utf8")
    assert "base64" in not_utf8["payload"]

    scores = consume_until(
        worker.services.kafka_bootstrap,
        worker.topic("risk-scores.v1"),
        lambda values: any(v["trigger"]["event_id"] == good["event_id"] for v in values),
    )
    assert any(v["patient_id"] == pid for v in scores)
    metrics = worker.get("/metrics").text
    vitals = worker.topic("vitals.v1")
    for reason in ("invalid_json", "not_utf8", "too_large", "validation"):
        assert f'vigil_dead_letters_total{{reason="{reason}",topic="{vitals}"}}' in metrics
    assert worker.get("/health").status_code == 200


def test_prefixes_isolate_workers_and_token_guards_api(
    worker: WorkerProcess, tmp_path: Path
) -> None:
    other_prefix = f"o{uuid.uuid4().hex[:8]}."
    with WorkerProcess.start(
        worker.services, other_prefix, tmp_path / "other.log", {"VIGIL_API_TOKEN": "s3cret"}
    ) as other:
        mine, theirs = f"mine-{uuid.uuid4().hex[:6]}", f"theirs-{uuid.uuid4().hex[:6]}"
        mine_event = vitals_event(mine, 1, heart_rate=70)
        their_event = vitals_event(theirs, 1, heart_rate=140)
        produce(
            worker.services.kafka_bootstrap, worker.topic("vitals.v1"), [event_bytes(mine_event)]
        )
        produce(
            other.services.kafka_bootstrap, other.topic("vitals.v1"), [event_bytes(their_event)]
        )

        auth = {"Authorization": "Bearer s3cret"}
        wait_for(lambda: worker.get(f"/api/patients/{mine}").status_code == 200)
        wait_for(lambda: other.get(f"/api/patients/{theirs}", headers=auth).status_code == 200)

        assert worker.get(f"/api/patients/{theirs}").status_code == 404
        assert other.get(f"/api/patients/{mine}", headers=auth).status_code == 404
        mine_scores = consume_until(
            worker.services.kafka_bootstrap, worker.topic("risk-scores.v1"),
            lambda vs: any(v["patient_id"] == mine for v in vs),
        )  # fmt: skip
        their_scores = consume_until(
            other.services.kafka_bootstrap, other.topic("risk-scores.v1"),
            lambda vs: any(v["patient_id"] == theirs for v in vs),
        )  # fmt: skip
        assert not any(v["patient_id"] == theirs for v in mine_scores)
        assert not any(v["patient_id"] == mine for v in their_scores)

        import redis

        client = redis.Redis.from_url(worker.services.redis_url)
        mine_keys = {k.decode() for k in client.scan_iter(f"vigil:{worker.prefix}*")}
        their_keys = {k.decode() for k in client.scan_iter(f"vigil:{other.prefix}*")}
        assert any(mine in k for k in mine_keys) and not any(theirs in k for k in mine_keys)
        assert any(theirs in k for k in their_keys) and not any(mine in k for k in their_keys)

        assert other.get("/api/patients").status_code == 401
        assert (
            other.get("/api/patients", headers={"Authorization": "Bearer nope"}).status_code == 401
        )
        assert other.get("/metrics").status_code == 401
        assert other.get("/health").status_code == 200
