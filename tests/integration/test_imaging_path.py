"""Imaging through a real worker: a study's score reaches the patient's risk score; an
unreadable or missing image is a dead letter with its reason and the worker goes on."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import numpy as np
import orjson
import pytest

from models.image_model import IMAGE_INPUTS, ImageModel, read_image
from models.manifest import install
from models.registry import ModelSlot
from tests.helpers import WorkerProcess, consume_until, score_of
from tests.modelkit import tiny_image_model

pytestmark = pytest.mark.services


def test_study_updates_the_risk_score_and_bad_images_are_dead_lettered(
    services, prefix, tmp_path
) -> None:
    models = tmp_path / "models"
    manifest, artifact = tiny_image_model(2)
    install(models, manifest, artifact)
    slot = ModelSlot(models, "imaging", IMAGE_INPUTS, ImageModel.load)
    slot.refresh(force=True)
    image = np.random.default_rng(0).normal(1000, 200, (256, 256)).astype(np.float32)
    good = tmp_path / "chest.npy"
    np.save(good, image)
    corrupt = tmp_path / "corrupt.dcm"
    corrupt.write_bytes(b"DICM but not really" * 10)
    model = slot.current
    probabilities = model.predict(model.preprocess(read_image(good.as_uri(), 1 << 26))[None])[0]
    expected = model.score(probabilities)

    pid = f"img-{uuid.uuid4().hex[:6]}"
    now = datetime.now(UTC).replace(microsecond=0)
    vitals = {
        "event_id": f"{pid}-v1",
        "patient_id": pid,
        "observed_at": (now - timedelta(minutes=30)).isoformat(),
        "heart_rate": 96.0,
        "spo2": 94.0,
    }

    def study(n: int, uri: str) -> dict:
        return {
            "event_id": f"{pid}-s{n}",
            "patient_id": pid,
            "acquired_at": (now - timedelta(minutes=20 - n)).isoformat(),
            "study_uid": f"1.2.826.0.1.{n}",
            "modality": "DX",
            "body_part": "CHEST",
            "image_uri": uri,
        }

    missing = study(1, (tmp_path / "gone.dcm").as_uri())
    broken = study(2, corrupt.as_uri())
    remote = study(3, "https://pacs.example/wado/1")
    ok = study(4, good.as_uri())
    with WorkerProcess.start(
        services, prefix, tmp_path / "worker.log", {"VIGIL_MODEL_DIR": str(models)}
    ) as worker:
        score_of(worker, "vitals.v1", [vitals])
        score = score_of(worker, "imaging-studies.v1", [missing, broken, remote, ok])
        dead = consume_until(
            services.kafka_bootstrap, worker.topic("dead-letter.v1"), lambda got: len(got) >= 3
        )

    assert score["trigger"]["topic"] == "imaging-studies.v1"
    assert score["scores"]["imaging"] == pytest.approx(expected, abs=1e-5)
    assert score["model_versions"]["imaging"] == manifest.version
    reasons = {orjson.loads(d["payload"])["event_id"]: d["error"]["type"] for d in dead}
    assert reasons == {
        missing["event_id"]: "image_missing",
        broken["event_id"]: "image_unreadable",
        remote["event_id"]: "image_unsupported",
    }
