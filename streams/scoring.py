"""Re-score patients whose state changed and decide alerts: the part every input topic
shares once its own modality is in Redis. What the scores and decisions write to Redis
goes with the batch's result; the worker stores it while it produces the scores
(streams/app.py)."""

from __future__ import annotations

import functools
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson

from features.news2 import news2
from features.samples import to_us
from features.store import PatientFeatures, ScoreUpdate
from models import news2_fallback
from models.fusion import FUSION_INPUTS, PASSTHROUGH, FusionModel
from models.image_model import IMAGE_INPUTS, ImageModel
from models.registry import ModelSlot
from models.text_model import NOTES_INPUTS, NotesModel
from models.vitals_model import MODEL_FEATURES, VitalsModel
from streams.alerts import AlertPolicy, AlertState, decide
from streams.events import DeadLetter, RiskScore, Trigger
from streams.metrics import Metrics
from streams.risk import fused_scores, score_patient, vitals_scores
from streams.settings import Settings


@dataclass
class BatchResult:
    scores: list[RiskScore] = field(default_factory=list)
    score_json: list[bytes] = field(default_factory=list)
    """`scores` encoded once, for Redis and the topic alike."""
    alerts: list[dict[str, Any]] = field(default_factory=list)
    """RiskAlerts as JSON objects: this batch's, and any a crash left unpublished."""
    dead: list[DeadLetter] = field(default_factory=list)
    stored: list[ScoreUpdate] = field(default_factory=list)
    """Per scored patient: the snapshot, history entry and alert decision (with its outbox)
    that `FeatureStore.save_scores` writes."""

    def extend(self, other: BatchResult) -> None:
        self.scores += other.scores
        self.score_json += other.score_json
        self.alerts += other.alerts
        self.dead += other.dead
        self.stored += other.stored


@dataclass
class Prepared:
    """A batch after the work that needs no shared state (validation, model inference):
    its dead letters so far, and what `apply` needs."""

    result: BatchResult
    work: Any


@dataclass
class ModelSet:
    """Every model slot a worker serves from `VIGIL_MODEL_DIR`."""

    vitals: ModelSlot[VitalsModel]
    fusion: ModelSlot[FusionModel]
    notes: ModelSlot[NotesModel]
    imaging: ModelSlot[ImageModel]

    @classmethod
    def from_settings(cls, settings: Settings) -> ModelSet:
        def slot(name: str, inputs: tuple[str, ...], loader: Any, fallback: str) -> ModelSlot:
            return ModelSlot(
                settings.model_dir, name, inputs, loader, settings.model_poll_s, fallback
            )

        return cls(
            vitals=slot(
                "vitals", MODEL_FEATURES, VitalsModel.load, f"the {news2_fallback.VERSION} score"
            ),
            fusion=slot("fusion", FUSION_INPUTS, FusionModel.load, f"{PASSTHROUGH} fusion"),
            notes=slot(
                "notes",
                NOTES_INPUTS,
                functools.partial(NotesModel.load, device=settings.model_device),
                "unscored notes",
            ),
            imaging=slot(
                "imaging",
                IMAGE_INPUTS,
                functools.partial(ImageModel.load, device=settings.model_device),
                "unscored images",
            ),
        )

    def refresh(self, force: bool = False) -> None:
        """The models every re-score uses; each input path refreshes its own model."""
        self.vitals.refresh(force)
        self.fusion.refresh(force)


class PatientScorer:
    def __init__(
        self,
        metrics: Metrics,
        policy: AlertPolicy,
        prefix: str,
        models: ModelSet,
    ) -> None:
        self.metrics = metrics
        self.policy = policy
        self.prefix = prefix
        self.models = models

    def score(
        self,
        features: dict[str, PatientFeatures],
        triggers: dict[str, str],
        units: dict[str, str],
        topic: str,
        result: BatchResult,
    ) -> None:
        """Score each patient (trigger: the event that caused it) and decide alerts; the
        scores, the decisions and the alerts still to publish (their outbox) go into
        `result.stored`, to be written before any of those alerts is produced (app.py)."""
        if not features:
            return
        scored_at = datetime.now(UTC)
        scored_us = to_us(scored_at)
        self.models.refresh()
        patients = list(features.values())
        news = [news2(pf.news2_inputs) for pf in patients]
        started = time.perf_counter()
        vitals = vitals_scores(patients, news, self.models.vitals)
        self.metrics.model_seconds.labels(vitals[0].version).observe(time.perf_counter() - started)
        fusion = self.models.fusion.current
        fusion_version = PASSTHROUGH if fusion is None else fusion.version
        fused = fused_scores(patients, vitals, [n.total for n in news], fusion)
        for (patient_id, pf), vitals_score, news2_result, fused_score in zip(
            features.items(), vitals, news, fused, strict=True
        ):
            self.metrics.duplicates.inc(pf.duplicates)
            self.metrics.dropped.inc(pf.dropped)
            trigger = Trigger(topic=topic, event_id=triggers[patient_id])
            risk = score_patient(
                pf, vitals_score, news2_result, fused_score, fusion_version, trigger, scored_at,
                self.policy,
            )  # fmt: skip
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
            risk_json = encode(risk)
            result.scores.append(risk)
            result.score_json.append(risk_json)
            result.alerts += outbox
            result.stored.append(
                ScoreUpdate(
                    patient_id=patient_id,
                    fused=risk.scores.fused or 0.0,
                    scored_us=scored_us,
                    risk_json=risk_json,
                    features=pf.values,
                    alert_state=state.to_json(),
                    alert_outbox=orjson.dumps(outbox) if outbox else None,
                )
            )


def encode(model: RiskScore | DeadLetter) -> bytes:
    return orjson.dumps(model.model_dump(mode="json"))
