"""The vitals path of one consumed batch: validate → Redis features → score.

Kept free of Faust so it reads top to bottom and tests can drive it directly; the agent
(`streams/app.py`) publishes what it returns and only then lets Faust ack the batch.
"""

from __future__ import annotations

from pydantic import ValidationError

from features.samples import VitalsSample
from features.store import FeatureStore
from streams.deadletters import RawRecord, Rejected, dead_letter, parse_record
from streams.events import VitalsObservation
from streams.scoring import BatchResult, PatientScorer, Prepared


class VitalsPipeline:
    def __init__(self, store: FeatureStore, scorer: PatientScorer, max_bytes: int) -> None:
        self.store = store
        self.scorer = scorer
        self.max_bytes = max_bytes

    async def prepare(self, records: list[RawRecord]) -> Prepared:
        """Validate; touches no shared state, so it runs outside the worker's state lock."""
        result = BatchResult()
        by_patient: dict[str, list[VitalsSample]] = {}
        units: dict[str, str] = {}
        for record in records:
            try:
                obs = parse_record(record, VitalsObservation, self.max_bytes)
            except (Rejected, ValidationError) as exc:
                result.dead.append(dead_letter(record, exc))
                continue
            by_patient.setdefault(obs.patient_id, []).append(VitalsSample.from_event(obs))
            if obs.unit:
                units[obs.patient_id] = obs.unit
        return Prepared(result, (by_patient, units))

    async def apply(self, prepared: Prepared, topic: str) -> BatchResult:
        by_patient, units = prepared.work
        result = prepared.result
        if not by_patient:
            return result
        # Effect 1: Redis features. Idempotent by event_id: a redelivered batch changes
        # nothing, and it is still re-scored so that no score or alert is lost.
        features = await self.store.apply_vitals(by_patient)
        triggers = {pid: samples[-1].event_id for pid, samples in by_patient.items()}
        # Effect 2: the scores and the alert decisions, which the worker stores (the API
        # snapshot, and the alerts to publish kept in an outbox until the broker has them)
        # while it produces the scores (see streams/app.py).
        self.scorer.score(features, triggers, units, topic, result)
        return result

    async def process(self, records: list[RawRecord], topic: str) -> BatchResult:
        """As the worker handles a batch, short of producing to Kafka: scores and
        decisions are stored, and the alerts stay in their outboxes."""
        result = await self.apply(await self.prepare(records), topic)
        await self.store.save_scores(result.stored)
        return result
