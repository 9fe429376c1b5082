"""Turn a patient's features into the `RiskScore` of CONTRACTS.md."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import numpy as np

from features.news2 import News2
from features.samples import from_us, to_us
from features.store import PatientFeatures
from models import news2_fallback
from models.fusion import FusionModel, Timed, fusion_rows
from models.registry import ModelSlot
from models.vitals_model import VitalsModel, design_matrix
from streams.alerts import AlertPolicy, level_for
from streams.events import Contributor, News2Result, RiskScore, Scores, Trigger


@dataclass(frozen=True, slots=True)
class VitalsScore:
    probability: float
    contributors: list[Contributor]
    version: str


def fallback_score(pf: PatientFeatures, result: News2) -> VitalsScore:
    """NEWS2's logistic placeholder, explained by the NEWS2 points of each parameter."""
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
    patients: list[PatientFeatures], news2_results: list[News2], models: ModelSlot[VitalsModel]
) -> list[VitalsScore]:
    """One model call for the whole batch; the NEWS2 fallback while no model is installed."""
    model = models.current
    if model is None:
        return [fallback_score(pf, r) for pf, r in zip(patients, news2_results, strict=True)]
    news = [pf.news2_inputs for pf in patients]
    totals = [r.total for r in news2_results]
    x = design_matrix(np.vstack([pf.values for pf in patients]), news, totals)
    return [
        VitalsScore(p.probability, p.contributors, model.version) for p in model.predict(x, news)
    ]


def _timed(modal: dict | None, field: str) -> Timed | None:
    """(score, time in µs) of a stored note or image score, as the fusion takes them."""
    if not modal:
        return None
    return modal["score"], to_us(datetime.fromisoformat(modal[field]))


def fused_scores(
    patients: list[PatientFeatures],
    vitals: list[VitalsScore],
    news2_totals: list[int],
    fusion: FusionModel | None,
) -> list[float]:
    """Every patient's fused score in one stacker call, each with its latest stored note and
    image score; without a fusion model the fused score is the vitals score."""
    if fusion is None:
        return [v.probability for v in vitals]
    rows = fusion_rows(
        [v.probability for v in vitals],
        [_timed(pf.notes, "written_at") for pf in patients],
        [_timed(pf.imaging, "acquired_at") for pf in patients],
        news2_totals,
        [pf.as_of_us for pf in patients],
    )
    return fusion.probabilities(rows).tolist()


def score_patient(
    pf: PatientFeatures,
    vitals: VitalsScore,
    news2_result: News2,
    fused: float,
    fusion_version: str,
    trigger: Trigger,
    scored_at: datetime,
    policy: AlertPolicy,
) -> RiskScore:
    """The score with its level before hysteresis (`alerts.decide` applies that), with the
    patient's latest stored note and image scores and its fused score (`fused_scores`)."""
    result = News2Result(
        total=news2_result.total,
        band=news2_result.band,  # type: ignore[arg-type]
        single_param_3=news2_result.single_param_3,
        components=news2_result.components,
        missing=news2_result.missing,
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
    versions["fusion"] = fusion_version
    return RiskScore(
        patient_id=pf.patient_id,
        scored_at=scored_at,
        as_of=from_us(pf.as_of_us),
        trigger=trigger,
        news2=result,
        scores=Scores(vitals=vitals.probability, notes=notes, imaging=imaging, fused=fused),
        risk_level=level_for(policy, fused, result),  # type: ignore[arg-type]
        contributors=contributors,
        model_versions=versions,
    )
