"""The notes path of one consumed batch: validate → text model → Redis → re-score.

The text model runs in a thread (`asyncio.to_thread`): encoding takes tens of ms per
sentence on CPU, and the event loop must keep heartbeating Kafka meanwhile.
"""

from __future__ import annotations

import asyncio
import logging
import time

import orjson
from pydantic import ValidationError

from features.samples import to_us
from features.store import FeatureStore
from models.registry import ModelSlot
from models.text_model import NoteScore, NotesModel
from streams.deadletters import RawRecord, Rejected, dead_letter, parse_record
from streams.events import ClinicalNote
from streams.metrics import Metrics
from streams.scoring import BatchResult, PatientScorer, Prepared

log = logging.getLogger(__name__)


def parse_note(record: RawRecord, max_bytes: int) -> ClinicalNote:
    note = parse_record(record, ClinicalNote, max_bytes)
    if not note.text.strip():
        raise Rejected("empty_note", "note text is empty or only whitespace")
    return note


def _modality(note: ClinicalNote, score: NoteScore, model: NotesModel) -> bytes:
    """What the patient's risk carries of its latest note: score, version, and the
    sentences that raised it."""
    drivers = [
        {"feature": "note_sentence", "value": text[:300], "contribution": round(c, 4)}
        for text, c in score.sentences
        if c > 0
    ]
    return orjson.dumps(
        {
            "score": score.probability,
            "version": model.version,
            "note_id": note.note_id,
            "written_at": note.written_at.isoformat(),
            "contributors": drivers,
        }
    )


class NotesPipeline:
    def __init__(
        self,
        store: FeatureStore,
        scorer: PatientScorer,
        models: ModelSlot[NotesModel],
        metrics: Metrics,
        max_bytes: int,
    ) -> None:
        self.store = store
        self.scorer = scorer
        self.models = models
        self.metrics = metrics
        self.max_bytes = max_bytes

    async def prepare(self, records: list[RawRecord]) -> Prepared:
        """Validate and run the text model: no shared state, so outside the state lock."""
        result = BatchResult()
        notes: list[ClinicalNote] = []
        for record in records:
            try:
                notes.append(parse_note(record, self.max_bytes))
            except (Rejected, ValidationError) as exc:
                result.dead.append(dead_letter(record, exc))
        if not notes:
            return Prepared(result, [])
        self.models.refresh()
        model = self.models.current
        if model is None:
            # Not the notes' fault, so not dead letters: they count once a model exists
            # and the topic is replayed (`vigil cohort replay`, or reset the group offset).
            log.warning("no notes model in the model directory: %d notes not scored", len(notes))
            return Prepared(result, [])
        started = time.perf_counter()
        scores = await asyncio.to_thread(model.score, [n.text for n in notes])
        self.metrics.model_seconds.labels(model.version).observe(time.perf_counter() - started)
        stored = [
            (note.patient_id, "notes", to_us(note.written_at), _modality(note, score, model))
            for note, score in zip(notes, scores, strict=True)
        ]
        triggers = {note.patient_id: note.event_id for note in notes}
        return Prepared(result, (stored, triggers))

    async def apply(self, prepared: Prepared, topic: str) -> BatchResult:
        if not prepared.work:
            return prepared.result
        stored, triggers = prepared.work
        # Effect 1: each patient's latest note score (a late note never replaces a newer).
        await self.store.set_modality(stored)
        # Effect 2: re-score the patients with vitals (the others when their vitals come).
        features = await self.store.read_features(list(triggers))
        self.scorer.score(features, triggers, {}, topic, prepared.result)
        return prepared.result
