"""The vitals path of one consumed batch: validate → Redis features → score.

Kept free of Faust so it reads top to bottom and tests can drive it directly; the agent
(`streams/agents.py`) publishes what it returns and only then lets Faust ack the batch.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

import orjson
from pydantic import ValidationError

from features.samples import VitalsSample
from features.store import FeatureStore
from streams.deadletters import RawRecord, Rejected, dead_letter
from streams.events import DeadLetter, RiskScore, VitalsObservation
from streams.metrics import Metrics
from streams.risk import score_patient


@dataclass
class BatchResult:
    scores: list[RiskScore] = field(default_factory=list)
    dead: list[DeadLetter] = field(default_factory=list)


def parse_vitals(record: RawRecord, max_bytes: int) -> VitalsObservation:
    """Validate one record; raises `Rejected` or `ValidationError` for a dead letter."""
    raw = record.value
    if raw is None:
        raise Rejected("empty", "record has no value (tombstone)")
    if len(raw) > max_bytes:
        raise Rejected("too_large", f"value is {len(raw)} bytes, over the {max_bytes} limit")
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise Rejected(
            "not_utf8", f"value is not UTF-8: {exc.reason} at byte {exc.start}"
        ) from None
    return VitalsObservation.model_validate_json(raw)


class VitalsPipeline:
    def __init__(self, store: FeatureStore, metrics: Metrics, max_bytes: int) -> None:
        self.store = store
        self.metrics = metrics
        self.max_bytes = max_bytes

    async def process(self, records: list[RawRecord], topic: str) -> BatchResult:
        result = BatchResult()
        by_patient: dict[str, list[VitalsSample]] = {}
        for record in records:
            try:
                obs = parse_vitals(record, self.max_bytes)
            except (Rejected, ValidationError) as exc:
                result.dead.append(dead_letter(record, exc))
                continue
            by_patient.setdefault(obs.patient_id, []).append(VitalsSample.from_event(obs))
        if not by_patient:
            return result

        # Effect 1: Redis. Idempotent by event_id, so a redelivered batch changes nothing.
        features = await self.store.apply_vitals(by_patient)
        scored_at = datetime.now(UTC)
        for patient_id, pf in features.items():
            self.metrics.duplicates.inc(pf.duplicates)
            self.metrics.dropped.inc(pf.dropped)
            trigger = by_patient[patient_id][-1].event_id
            result.scores.append(score_patient(pf, topic, trigger, scored_at))

        # Effect 2: the API's snapshot (latest score, features, 24 h history); overwrites.
        await self.store.save_risk(
            [
                (
                    s.patient_id,
                    s.scores.fused or 0.0,
                    int(scored_at.timestamp() * 1e6),
                    encode(s),
                    features[s.patient_id].features,
                )
                for s in result.scores
            ]
        )
        return result


def encode(model: RiskScore | DeadLetter) -> bytes:
    return orjson.dumps(model.model_dump(mode="json"))
