"""Turn a patient's features into the `RiskScore` of CONTRACTS.md."""

from __future__ import annotations

from datetime import datetime

from features.news2 import news2
from features.samples import from_us
from features.store import PatientFeatures
from models import news2_fallback
from streams.alerts import AlertPolicy, level_for
from streams.events import Contributor, News2Result, RiskScore, Scores, Trigger

FUSION_VERSION = "passthrough-1"
"""With one modality, the fused score is the vitals score."""


def score_patient(
    pf: PatientFeatures,
    trigger_topic: str,
    trigger_event_id: str,
    scored_at: datetime,
    policy: AlertPolicy,
) -> RiskScore:
    """The score with its level before hysteresis (`alerts.decide` applies that)."""
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
    news2_result = News2Result(
        total=result.total,
        band=result.band,  # type: ignore[arg-type]
        single_param_3=result.single_param_3,
        components=result.components,
        missing=result.missing,
    )
    return RiskScore(
        patient_id=pf.patient_id,
        scored_at=scored_at,
        as_of=from_us(pf.as_of_us),
        trigger=Trigger(topic=trigger_topic, event_id=trigger_event_id),
        news2=news2_result,
        scores=Scores(vitals=vitals, notes=None, imaging=None, fused=vitals),
        risk_level=level_for(policy, vitals, news2_result),  # type: ignore[arg-type]
        contributors=contributors,
        model_versions={"vitals": news2_fallback.VERSION, "fusion": FUSION_VERSION},
    )
