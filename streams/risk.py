"""Turn a patient's features into the `RiskScore` of CONTRACTS.md."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from features.news2 import news2
from features.samples import from_us, to_us
from features.store import PatientFeatures
from features.windows import FEATURE_NAMES
from models import news2_fallback
from models.fusion import PASSTHROUGH, FusionModel
from models.registry import ModelSlot
from models.vitals_model import VitalsModel, design_matrix
from streams.alerts import AlertPolicy, level_for
from streams.events import Contributor, News2Result, RiskScore, Scores, Trigger


@dataclass(frozen=True, slots=True)
class VitalsScore:
    probability: float
    contributors: list[Contributor]
    version: str


def fallback_score(pf: PatientFeatures) -> VitalsScore:
    """NEWS2's logistic placeholder, explained by the NEWS2 points of each parameter."""
    result = news2(pf.news2_inputs)
    contributors = [
        Contributor(
            feature=f"news2_{name}",
            value=getattr(pf.news2_inputs, name),
            contribution=float(points),
        )
        for name, points in sorted(result.components.items(), key=lambda kv: -kv[1])
        if points > 0
    ][:5]
    return VitalsScore(
        news2_fallback.probability(result.total), contributors, news2_fallback.VERSION
    )


def vitals_scores(
    patients: list[PatientFeatures], models: ModelSlot[VitalsModel]
) -> list[VitalsScore]:
    """One model call for the whole batch; the NEWS2 fallback while no model is installed."""
    model = models.current
    if model is None:
        return [fallback_score(pf) for pf in patients]
    news = [pf.news2_inputs for pf in patients]
    x = design_matrix([[pf.features[name] for name in FEATURE_NAMES] for pf in patients], news)
    return [
        VitalsScore(p.probability, p.contributors, model.version) for p in model.predict(x, news)
    ]


def _timed(modal: dict | None, field: str) -> tuple[float, int] | None:
    """(score, time in µs) of a stored note or image score, as the fusion takes them."""
    if not modal:
        return None
    return modal["score"], to_us(datetime.fromisoformat(modal[field]))


def score_patient(
    pf: PatientFeatures,
    vitals: VitalsScore,
    fusion: FusionModel | None,
    trigger_topic: str,
    trigger_event_id: str,
    scored_at: datetime,
    policy: AlertPolicy,
) -> RiskScore:
    """The score with its level before hysteresis (`alerts.decide` applies that). Notes and
    imaging enter with their latest stored scores; without a fusion model the fused score
    is the vitals score."""
    result = news2(pf.news2_inputs)
    news2_result = News2Result(
        total=result.total,
        band=result.band,  # type: ignore[arg-type]
        single_param_3=result.single_param_3,
        components=result.components,
        missing=result.missing,
    )
    notes = pf.notes["score"] if pf.notes else None
    imaging = pf.imaging["score"] if pf.imaging else None
    versions = {"vitals": vitals.version}
    contributors = list(vitals.contributors)
    if pf.notes:
        versions["notes"] = pf.notes["version"]
        contributors += [Contributor(**c) for c in pf.notes.get("contributors", [])]
    if pf.imaging:
        versions["imaging"] = pf.imaging["version"]
        contributors += [Contributor(**c) for c in pf.imaging.get("contributors", [])]
    if fusion is None:
        fused = vitals.probability
        versions["fusion"] = PASSTHROUGH
    else:
        fused = fusion.fuse(
            vitals.probability,
            _timed(pf.notes, "written_at"),
            _timed(pf.imaging, "acquired_at"),
            result.total,
            pf.as_of_us,
        )
        versions["fusion"] = fusion.version
    return RiskScore(
        patient_id=pf.patient_id,
        scored_at=scored_at,
        as_of=from_us(pf.as_of_us),
        trigger=Trigger(topic=trigger_topic, event_id=trigger_event_id),
        news2=news2_result,
        scores=Scores(vitals=vitals.probability, notes=notes, imaging=imaging, fused=fused),
        risk_level=level_for(policy, fused, news2_result),  # type: ignore[arg-type]
        contributors=contributors,
        model_versions=versions,
    )
