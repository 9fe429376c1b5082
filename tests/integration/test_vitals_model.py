"""The vitals model in a real worker: no train/serve skew, hot reload under load."""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import orjson
import pytest
from kafka import KafkaProducer

from features.client import connect
from features.offline import feature_rows
from features.store import FeatureStore, PatientFeatures
from features.windows import FEATURE_NAMES
from models import cohort
from models.eventlog import iter_vitals_lines, read_vitals
from models.manifest import install
from models.registry import ModelSlot
from models.vitals_model import MODEL_FEATURES, VitalsModel, design_matrix
from tests.helpers import (
    WorkerProcess,
    consume_until,
    group_caught_up,
    produce,
    read_all,
    wait_for,
)
from tests.modelkit import tiny_model

pytestmark = pytest.mark.services


async def _redis_features(redis_url: str, namespace: str, ids: list[str]) -> dict:
    client = connect(redis_url)
    try:
        return await FeatureStore(client, namespace).read_features(ids)
    finally:
        await client.aclose()


def _served_row(pf: PatientFeatures) -> np.ndarray:
    return design_matrix([[pf.features[n] for n in FEATURE_NAMES]], [pf.news2_inputs])[0]


def test_replayed_cohort_features_and_scores_equal_offline_training_rows(
    services, prefix, tmp_path
) -> None:
    """Training rows (features/offline.py) equal what a worker computed in Redis from the
    same log replayed through Kafka, and so does the model's score on them."""
    spec = cohort.CohortSpec(patients=8, days=1.0, seed=3, monitored_share=0.5)
    directory = tmp_path / "cohort"
    cohort.write(spec, directory)
    models = tmp_path / "models"
    manifest, artifact = tiny_model(5)
    install(models, manifest, artifact)
    lines = list(iter_vitals_lines(directory))
    with WorkerProcess.start(
        services, prefix, tmp_path / "worker.log", {"VIGIL_MODEL_DIR": str(models)}
    ) as worker:
        produce(
            services.kafka_bootstrap,
            worker.topic("vitals.v1"),
            [(orjson.loads(line)["patient_id"].encode(), line) for line in lines],
        )
        wait_for(
            lambda: group_caught_up(
                services.kafka_bootstrap, f"{prefix}vigil-worker", worker.topic("vitals.v1")
            ),
            timeout_s=120,
        )
        logs = read_vitals(directory)
        served = asyncio.run(_redis_features(services.redis_url, f"vigil:{prefix}", list(logs)))
        snapshots = {pid: worker.get(f"/api/patients/{pid}").json() for pid in logs}

    slot = ModelSlot(models, "vitals", MODEL_FEATURES, VitalsModel.load)
    slot.refresh(force=True)
    model = slot.current
    compared = 0
    for pid, log in logs.items():
        pf = served[pid]
        offline = feature_rows(log, [pf.as_of_us])
        assert offline.as_of_us[0] == pf.as_of_us
        assert offline.news2[0] == pf.news2_inputs, pid
        want = design_matrix(offline.values, offline.news2)[0]
        got = _served_row(pf)
        np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-9, err_msg=pid)
        compared += int(np.isfinite(want).sum())
        risk = snapshots[pid]["risk"]
        assert risk["model_versions"]["vitals"] == manifest.version
        (expected,) = model.predict(want.reshape(1, -1), offline.news2)
        assert risk["scores"]["vitals"] == pytest.approx(expected.probability, abs=1e-6)
        assert risk["contributors"] == [c.model_dump() for c in expected.contributors]
    print(f"compared {compared} feature values of {len(logs)} patients, {len(lines)} events")
    assert compared > 1000


def test_model_hot_reload_under_load_drops_no_event_and_refuses_a_mismatch(
    services, prefix, tmp_path
) -> None:
    models = tmp_path / "models"
    first, second = tiny_model(11), tiny_model(12)
    renamed = list(MODEL_FEATURES)
    renamed[0] = "heart_rate_last"
    bad = tiny_model(13, features=renamed)
    install(models, *first)
    env = {"VIGIL_MODEL_DIR": str(models), "VIGIL_MODEL_POLL_S": "0.5"}
    patients = [f"hot-{uuid.uuid4().hex[:6]}-{i}" for i in range(20)]
    start = datetime.now(UTC) - timedelta(hours=6)
    sent: list[dict] = []

    def feed(worker: WorkerProcess, seconds: float) -> None:
        """Events of all patients for `seconds`, each patient's in time order."""
        producer = KafkaProducer(bootstrap_servers=services.kafka_bootstrap, linger_ms=5)
        t0, step = time.monotonic(), 0
        while time.monotonic() - t0 < seconds:
            for i, pid in enumerate(patients):
                event = {
                    "event_id": f"{pid}-{step}",
                    "patient_id": pid,
                    "observed_at": (start + timedelta(seconds=5 * step)).isoformat(),
                    "heart_rate": 70.0 + (step + i) % 40,
                    "respiratory_rate": 14.0 + step % 9,
                    "spo2": 97.0 - step % 5,
                }
                value = orjson.dumps(event)
                producer.send(worker.topic("vitals.v1"), key=pid.encode(), value=value)
                sent.append(event)
            step += 1
            time.sleep(0.02)
        producer.flush()
        producer.close()

    with WorkerProcess.start(services, prefix, tmp_path / "worker.log", env) as worker:
        feeder = threading.Thread(target=feed, args=(worker, 12.0))
        feeder.start()
        time.sleep(4)
        install(models, *second)
        time.sleep(3)
        install(models, *bad)
        feeder.join()
        last = {e["patient_id"]: e["event_id"] for e in sent}
        scores = consume_until(
            services.kafka_bootstrap,
            worker.topic("risk-scores.v1"),
            lambda got: (
                {s["patient_id"] for s in got if s["trigger"]["event_id"] == last[s["patient_id"]]}
                >= set(patients)
            ),
            timeout_s=90,
        )
        served = asyncio.run(_redis_features(services.redis_url, f"vigil:{prefix}", patients))

    log = (tmp_path / "worker.log").read_text()
    v1, v2 = first[0].version, second[0].version
    by_patient: dict[str, list[str]] = {}
    for score in scores:  # per patient, scores are in order (keyed by patient)
        by_patient.setdefault(score["patient_id"], []).append(score["model_versions"]["vitals"])
    print(f"{len(sent)} events in 12 s, {len(scores)} scores")
    for pid, versions in by_patient.items():
        switch = versions.index(v2)
        assert switch > 0 and set(versions[:switch]) == {v1}, pid
        assert set(versions[switch:]) == {v2}, f"{pid}: a score from the refused model"
    assert f"refusing vitals model {bad[0].version}" in log
    assert "heart_rate_last" in log
    for pid in patients:  # every event reflected exactly once
        events = [e for e in sent if e["patient_id"] == pid]
        assert served[pid].features["hr_count_24h"] == len(events)
    assert len(read_all(services.kafka_bootstrap, worker.topic("dead-letter.v1"), 1)) == 0
    assert Path(models / "vitals" / second[0].version).is_dir()
