"""Turn a patient's features into the `RiskScore` of CONTRACTS.md."""

from __future__ import annotations

from datetime import datetime

from features.news2 import News2, news2
from features.samples import from_us
from features.store import PatientFeatures
from models import news2_fallback
from streams.events import Contributor, News2Result, RiskScore, Scores, Trigger

FUSION_VERSION = "passthrough-1"
"""With one modality, the fused score is the vitals score."""

# Fused-score thresholds for the risk level; NEWS2 sets a floor (see `risk_level`).
LEVEL_THRESHOLDS = (("critical", 0.9), ("high", 0.6), ("medium", 0.3))
_ORDER = ("low", "medium", "high", "critical")


def risk_level(fused: float, result: News2) -> str:
    """The higher of the fused-score level and NEWS2's floor.

    NEWS2 `high` is at least `high`; NEWS2 `medium` or any single parameter scoring 3 is at
    least `medium` (RCP: a single red score needs an urgent ward-based response).
    """
    level = next((name for name, cut in LEVEL_THRESHOLDS if fused >= cut), "low")
    floor = "low"
    if result.band == "high":
        floor = "high"
    elif result.band in ("medium", "low-medium"):
        floor = "medium"
    return max(level, floor, key=_ORDER.index)


def score_patient(
    pf: PatientFeatures, trigger_topic: str, trigger_event_id: str, scored_at: datetime
) -> RiskScore:
    result = news2(pf.news2_inputs)
    vitals = news2_fallback.probability(result.total)
    contributors = [
        Contributor(
            feature=f"news2_{name}",
            value=getattr(pf.news2_inputs, name),
            contribution=float(points),
        )
        for name, points in sorted(result.components.items(), key=lambda kv: -kv[1])
        if points > 0
    ][:5]
    return RiskScore(
        patient_id=pf.patient_id,
        scored_at=scored_at,
        as_of=from_us(pf.as_of_us),
        trigger=Trigger(topic=trigger_topic, event_id=trigger_event_id),
        news2=News2Result(
            total=result.total,
            band=result.band,  # type: ignore[arg-type]
            single_param_3=result.single_param_3,
            components=result.components,
            missing=result.missing,
        ),
        scores=Scores(vitals=vitals, notes=None, imaging=None, fused=vitals),
        risk_level=risk_level(vitals, result),  # type: ignore[arg-type]
        contributors=contributors,
        model_versions={"vitals": news2_fallback.VERSION, "fusion": FUSION_VERSION},
    )
