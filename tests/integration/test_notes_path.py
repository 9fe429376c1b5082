"""Notes through a real worker: the note's score reaches the patient's risk score with the
sentences that drove it; an empty note is a dead letter and the worker goes on."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import orjson
import pytest

from features.samples import to_us
from models.fusion import FUSION_INPUTS, FusionModel
from models.manifest import install
from models.registry import ModelSlot
from models.text_model import NOTES_INPUTS, NotesModel
from tests.helpers import WorkerProcess, consume_until, score_of
from tests.modelkit import tiny_fusion_model, tiny_notes_model

pytestmark = pytest.mark.services

TEXT = (
    "Patient reviewed at 14:00. Febrile 39.1 with rigors. New oxygen requirement, SpO2 90% "
    "on 4L. No chest pain. Plan: cultures and antibiotics."
)


def test_note_updates_the_risk_score_and_empty_note_is_dead_lettered(
    services, prefix, tmp_path
) -> None:
    models = tmp_path / "models"
    manifest, artifact = tiny_notes_model(3)
    install(models, manifest, artifact)
    fusion_manifest, fusion_artifact = tiny_fusion_model()
    install(models, fusion_manifest, fusion_artifact)
    fusion = ModelSlot(models, "fusion", FUSION_INPUTS, FusionModel.load)
    fusion.refresh(force=True)
    slot = ModelSlot(models, "notes", NOTES_INPUTS, NotesModel.load)
    slot.refresh(force=True)
    (expected,) = slot.current.score([TEXT])

    pid = f"note-{uuid.uuid4().hex[:6]}"
    now = datetime.now(UTC).replace(microsecond=0)
    vitals = {
        "event_id": f"{pid}-v1",
        "patient_id": pid,
        "observed_at": (now - timedelta(minutes=30)).isoformat(),
        "heart_rate": 104.0,
        "respiratory_rate": 22.0,
        "spo2": 93.0,
    }
    note = {
        "event_id": f"{pid}-n1",
        "patient_id": pid,
        "written_at": (now - timedelta(minutes=10)).isoformat(),
        "note_id": "n1",
        "note_type": "progress",
        "text": TEXT,
    }
    empty = {**note, "event_id": f"{pid}-n0", "note_id": "n0", "text": "   \n "}
    with WorkerProcess.start(
        services, prefix, tmp_path / "worker.log", {"VIGIL_MODEL_DIR": str(models)}
    ) as worker:
        first = score_of(worker, "vitals.v1", [vitals])
        score = score_of(worker, "ehr-notes.v1", [empty, note])
        dead = consume_until(
            services.kafka_bootstrap, worker.topic("dead-letter.v1"), lambda got: len(got) >= 1
        )
        snapshot = worker.get(f"/api/patients/{pid}").json()

    assert score["trigger"]["topic"] == "ehr-notes.v1"
    assert score["scores"]["notes"] == pytest.approx(expected.probability, abs=1e-6)
    assert score["scores"]["vitals"] is not None and score["scores"]["imaging"] is None
    assert score["model_versions"]["notes"] == manifest.version
    sentences = [c["value"] for c in score["contributors"] if c["feature"] == "note_sentence"]
    assert sentences == [s for s, c in expected.sentences if c > 0]
    assert snapshot["risk"]["trigger"]["event_id"] == note["event_id"]
    # the fused score: vitals alone first, then with the note (10 min old at the re-score,
    # whose vitals are 30 min old: the note is the newest thing the patient has)
    as_of = to_us(datetime.fromisoformat(vitals["observed_at"]))
    news2 = first["news2"]["total"]
    p_vitals = first["scores"]["vitals"]
    assert first["scores"]["fused"] == pytest.approx(
        fusion.current.fuse(p_vitals, None, None, news2, as_of), abs=1e-9
    )
    note_at = to_us(datetime.fromisoformat(note["written_at"]))
    with_note = fusion.current.fuse(p_vitals, (expected.probability, note_at), None, news2, as_of)
    assert score["scores"]["fused"] == pytest.approx(with_note, abs=1e-6)
    assert score["model_versions"]["fusion"] == fusion_manifest.version
    (letter,) = dead
    assert letter["error"]["type"] == "empty_note"
    assert orjson.loads(letter["payload"])["event_id"] == empty["event_id"]
