"""The vitals path of one consumed batch: validate → Redis features → score.

Kept free of Faust so it reads top to bottom and tests can drive it directly; the agent
(`streams/app.py`) publishes what it returns and only then lets Faust ack the batch.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson
from pydantic import ValidationError

from features.samples import VitalsSample, to_us
from features.store import FeatureStore, ScoreUpdate
from models import news2_fallback
from models.registry import ModelSlot
from models.vitals_model import MODEL_FEATURES, VitalsModel
from streams.alerts import AlertPolicy, AlertState, decide
from streams.deadletters import RawRecord, Rejected, dead_letter
from streams.events import DeadLetter, RiskScore, VitalsObservation
from streams.metrics import Metrics
from streams.risk import score_patient, vitals_scores
from streams.settings import Settings


@dataclass
class BatchResult:
    scores: list[RiskScore] = field(default_factory=list)
    alerts: list[dict[str, Any]] = field(default_factory=list)
    """RiskAlerts as JSON objects: this batch's, and any a crash left unpublished."""
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
    def __init__(
        self,
        store: FeatureStore,
        metrics: Metrics,
        max_bytes: int,
        policy: AlertPolicy,
        prefix: str,
        models: ModelSlot[VitalsModel],
    ) -> None:
        self.store = store
        self.models = models
        self.metrics = metrics
        self.max_bytes = max_bytes
        self.policy = policy
        self.prefix = prefix

    async def process(self, records: list[RawRecord], topic: str) -> BatchResult:
        result = BatchResult()
        by_patient: dict[str, list[VitalsSample]] = {}
        units: dict[str, str] = {}
        for record in records:
            try:
                obs = parse_vitals(record, self.max_bytes)
            except (Rejected, ValidationError) as exc:
                result.dead.append(dead_letter(record, exc))
                continue
            by_patient.setdefault(obs.patient_id, []).append(VitalsSample.from_event(obs))
            if obs.unit:
                units[obs.patient_id] = obs.unit
        if not by_patient:
            return result

        # Effect 1: Redis features. Idempotent by event_id: a redelivered batch changes
        # nothing, and it is still re-scored so that no score or alert is lost.
        features = await self.store.apply_vitals(by_patient)
        scored_at = datetime.now(UTC)
        scored_us = to_us(scored_at)
        self.models.refresh()
        started = time.perf_counter()
        vitals = vitals_scores(list(features.values()), self.models)
        self.metrics.model_seconds.labels(vitals[0].version).observe(time.perf_counter() - started)
        updates = []
        for (patient_id, pf), vitals_score in zip(features.items(), vitals, strict=True):
            self.metrics.duplicates.inc(pf.duplicates)
            self.metrics.dropped.inc(pf.dropped)
            trigger = by_patient[patient_id][-1].event_id
            risk = score_patient(pf, vitals_score, topic, trigger, scored_at, self.policy)
            state, alert, suppressed = decide(
                self.policy,
                AlertState.from_json(pf.alert_state),
                risk,
                self.prefix,
                units.get(patient_id),
                scored_at,
            )
            self.metrics.alerts_suppressed.inc(suppressed)
            outbox = orjson.loads(pf.alert_outbox) if pf.alert_outbox else []
            if alert is not None:
                outbox.append(alert.model_dump(mode="json"))
            result.scores.append(risk)
            result.alerts += outbox
            risk_json = encode(risk)
            updates.append(
                ScoreUpdate(
                    patient_id=patient_id,
                    fused=risk.scores.fused or 0.0,
                    scored_us=scored_us,
                    risk_json=risk_json,
                    features=pf.features,
                    alert_state=state.to_json(),
                    alert_outbox=orjson.dumps(outbox) if outbox else None,
                )
            )
        # Effect 2: the scores, the API snapshot and the alert decisions, with the alerts
        # to publish kept in an outbox until the broker has them (see streams/app.py).
        await self.store.save_scores(updates)
        return result


def vitals_slot(settings: Settings) -> ModelSlot[VitalsModel]:
    return ModelSlot(
        settings.model_dir,
        "vitals",
        MODEL_FEATURES,
        VitalsModel.load,
        poll_s=settings.model_poll_s,
        fallback=f"the {news2_fallback.VERSION} score",
    )


def encode(model: RiskScore | DeadLetter) -> bytes:
    return orjson.dumps(model.model_dump(mode="json"))
