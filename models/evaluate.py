"""`vigil evaluate`: the installed vitals model against NEWS2 on a held-out cohort.

Writes `report.md`, `report.json` and PNG plots (ROC, PR, calibration, lead times). The
model is used at the operating threshold its training picked on its own held-out
patients; nothing here is tuned on the evaluation cohort.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only: no display on servers and CI

import matplotlib.pyplot as plt
import numpy as np
import orjson
from sklearn.metrics import precision_recall_curve, roc_curve

from models import clinical_metrics as cm
from models.dataset import Dataset, build
from models.eventlog import read_info
from models.vitals_model import VitalsModel

AUROC_MARGIN = 0.05
"""Issue #3's bar: the model's AUROC beats NEWS2's by at least this much."""


def _scores(
    data: Dataset, probability: np.ndarray, model_threshold: float
) -> dict[str, tuple[np.ndarray, float]]:
    news2 = data.news2_total.astype(np.float64)
    return {
        "model": (probability, model_threshold),
        "NEWS2 ≥ 5": (news2, 5.0),
        "NEWS2 ≥ 7": (news2, 7.0),
    }


def _row(data: Dataset, score: np.ndarray, threshold: float) -> dict[str, Any]:
    events = cm.event_metrics(data, score, threshold)
    return {
        **cm.discrimination(data.y, score),
        "threshold": threshold,
        "alerts": events.alerts,
        "alerts_per_35_patient_days": events.alerts_per_35_patient_days,
        "events": events.events,
        "detected": events.detected,
        "sensitivity": events.sensitivity,
        "ppv": events.ppv,
        "median_lead_h": events.median_lead_h,
        "lead_times_h": events.lead_times_h,
    }


def _by_group(
    data: Dataset, scores: dict[str, tuple[np.ndarray, float]], key: str
) -> dict[str, dict[str, Any]]:
    """Per syndrome (events) or per baseline (alert burden in patients without an event)."""
    groups: dict[str, dict[str, Any]] = {}
    names = sorted({getattr(o, key) or "none" for o in data.outcomes})
    for name in names:
        patients = np.array(
            [i for i, o in enumerate(data.outcomes) if (getattr(o, key) or "none") == name]
        )
        part = data.of_patients(patients)
        if len(part.y) == 0:
            continue
        seen = np.unique(part.patient)
        entry: dict[str, Any] = {
            "patients": len(seen),
            "events": sum(part.outcomes[p].event_at is not None for p in seen),
        }
        negatives = np.flatnonzero(data.y == 0)
        for label, (score, threshold) in scores.items():
            sub = score[np.isin(data.patient, patients)]
            events = cm.event_metrics(part, sub, threshold)
            entry[label] = {
                "sensitivity": events.sensitivity,
                "alerts_per_35_patient_days": events.alerts_per_35_patient_days,
            }
            positives = np.flatnonzero((data.y == 1) & np.isin(data.patient, patients))
            if len(positives):
                rows = np.concatenate([positives, negatives])
                entry[label]["auroc"] = cm.discrimination(data.y[rows], score[rows])["auroc"]
        groups[name] = entry
    return groups


def _plots(
    data: Dataset, scores: dict[str, tuple[np.ndarray, float]], report: dict[str, Any], out: Path
) -> list[str]:
    probability = scores["model"][0]
    news2 = scores["NEWS2 ≥ 5"][0]
    files = []

    fig, ax = plt.subplots(figsize=(5, 5))
    for label, score in (("XGBoost vitals model", probability), ("NEWS2 total", news2)):
        fpr, tpr, _ = roc_curve(data.y, score)
        ax.plot(fpr, tpr, label=label)
    ax.plot([0, 1], [0, 1], ls=":", c="grey")
    ax.set(xlabel="1 - specificity", ylabel="sensitivity", title="ROC (patient-hours)")
    ax.legend()
    files.append(_save(fig, out / "roc.png"))

    fig, ax = plt.subplots(figsize=(5, 5))
    for label, score in (("XGBoost vitals model", probability), ("NEWS2 total", news2)):
        precision, recall, _ = precision_recall_curve(data.y, score)
        ax.plot(recall, precision, label=label)
    ax.axhline(data.y.mean(), ls=":", c="grey", label="prevalence")
    ax.set(xlabel="recall", ylabel="precision", title="Precision-recall (patient-hours)")
    ax.legend()
    files.append(_save(fig, out / "pr.png"))

    fig, ax = plt.subplots(figsize=(5, 5))
    cal = report["calibration"]
    ax.plot(cal["predicted"], cal["observed"], marker="o", label="model (deciles)")
    top = max(max(cal["predicted"]), max(cal["observed"]), 0.05)
    ax.plot([0, top], [0, top], ls=":", c="grey", label="perfect")
    ax.set(xlabel="predicted risk", ylabel="observed rate", title="Calibration")
    ax.legend()
    files.append(_save(fig, out / "calibration.png"))

    fig, ax = plt.subplots(figsize=(6, 4))
    bins = np.arange(0, data.horizon_h + data.every_h, data.every_h)
    for label in ("model", "NEWS2 ≥ 5", "NEWS2 ≥ 7"):
        ax.hist(report["scores"][label]["lead_times_h"], bins=bins, alpha=0.5, label=label)
    ax.set(xlabel="hours from first alert to event", ylabel="events", title="Lead time")
    ax.legend()
    files.append(_save(fig, out / "lead_time.png"))
    return files


def _save(fig: Any, path: Path) -> str:
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path.name


def evaluate(cohort: Path, model: VitalsModel, out: Path, command: str) -> dict[str, Any]:
    out.mkdir(parents=True, exist_ok=True)
    data = build(cohort, horizon_h=model.manifest.horizon_h or 12.0)
    probability = model.probabilities(data.x)
    threshold = model.manifest.operating_threshold
    if threshold is None:
        raise ValueError(f"model {model.version} has no operating threshold in its manifest")
    scores = _scores(data, probability, threshold)
    report: dict[str, Any] = {
        "command": command,
        "model": model.version,
        "training_cohort": model.manifest.training.get("cohort", {}),
        "cohort": read_info(cohort),
        "rows": len(data.y),
        "positive_rows": int(data.y.sum()),
        "patients": len(np.unique(data.patient)),
        "patient_days": data.patient_days,
        "scores": {label: _row(data, s, t) for label, (s, t) in scores.items()},
        "calibration": cm.calibration(data.y, probability),
        "by_syndrome": _by_group(data, scores, "syndrome"),
        "by_baseline": _by_group(data, scores, "baseline"),
        "rearm_h": cm.REARM_H,
        "horizon_h": data.horizon_h,
    }
    model_row, news2_row = report["scores"]["model"], report["scores"]["NEWS2 ≥ 5"]
    report["bar"] = {
        "auroc_gain": model_row["auroc"] - news2_row["auroc"],
        "auroc_gain_95ci": cm.auroc_gain_interval(data, probability, scores["NEWS2 ≥ 5"][0]),
        "auroc_gain_required": AUROC_MARGIN,
        "alerts_per_35_patient_days": model_row["alerts_per_35_patient_days"],
        "met": model_row["auroc"] - news2_row["auroc"] >= AUROC_MARGIN
        and model_row["alerts_per_35_patient_days"] <= 1.0,
    }
    report["plots"] = _plots(data, scores, report, out)
    (out / "report.json").write_bytes(
        orjson.dumps(report, option=orjson.OPT_INDENT_2 | orjson.OPT_SERIALIZE_NUMPY)
    )
    (out / "report.md").write_text(markdown(report))
    return report


def _f(value: float | None, digits: int = 3) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def _cohort_text(info: dict[str, Any]) -> str:
    spec = info.get("spec", {})
    source = info.get("generator") or info.get("source", "an unnamed source")
    extra = f", {spec['days']:g} days, seed {spec['seed']}" if "seed" in spec else ""
    return f"{info.get('patients', '?')} patients from {source}{extra}"


def markdown(r: dict[str, Any]) -> str:
    spec = r["cohort"].get("spec", {})
    bar = r["bar"]
    lines = [
        "# Vitals model evaluation",
        "",
        f"Model `{r['model']}` against NEWS2 on a held-out cohort "
        f"({r['patients']} patients, {r['patient_days']:.0f} patient-days, "
        f"{r['scores']['model']['events']} deterioration events; "
        f"cohort {r['cohort'].get('generator', r['cohort'].get('source', '?'))} "
        f"seed {spec.get('seed', '?')}). Made by:",
        "",
        f"    {r['command']}",
        "",
        f"The model was trained on {_cohort_text(r['training_cohort'])}; the held-out cohort "
        f"is {_cohort_text(r['cohort'])}.",
        "",
        f"**Bar (issue #3):** AUROC gain over NEWS2 {_f(bar['auroc_gain'])} "
        f"(95 % interval by resampling patients: {_f(bar['auroc_gain_95ci'][0])} to "
        f"{_f(bar['auroc_gain_95ci'][1])}; required ≥ {bar['auroc_gain_required']}), at "
        f"{_f(bar['alerts_per_35_patient_days'], 2)} alerts per 35 patient-days "
        f"(required ≤ 1): **{'met' if bar['met'] else 'not met'}**.",
        "",
        "## How it is measured",
        "",
        f"- A check every hour of each patient's stay until discharge or the event; the label "
        f"of a check is 1 when the event follows within {r['horizon_h']:g} h "
        f"({r['rows']} checks, {r['positive_rows']} positive).",
        "- AUROC and AUPRC are over those checks. NEWS2 is the total of the latest values "
        "(4 h look-back) at the check.",
        f"- An alert fires at a check at or above the threshold when the patient had no alert "
        f"in the previous {r['rearm_h']:g} h. Sensitivity: events with an alert in the "
        f"{r['horizon_h']:g} h before them. PPV: alerts followed by the event within "
        f"{r['horizon_h']:g} h. Lead time: from the first such alert to the event.",
        "- The model's threshold is the one its training chose on its own held-out patients "
        "for at most 1 alert per 35 patient-days; it is not tuned here.",
        "",
        "## Results",
        "",
        "| score | threshold | AUROC | AUPRC | sensitivity | PPV | alerts / 35 patient-days "
        "| median lead (h) |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for label, row in r["scores"].items():
        lines.append(
            f"| {label} | {_f(row['threshold'])} | {_f(row['auroc'])} | {_f(row['auprc'])} | "
            f"{_f(row['sensitivity'], 2)} ({row['detected']}/{row['events']}) | "
            f"{_f(row['ppv'], 2)} | {_f(row['alerts_per_35_patient_days'], 2)} | "
            f"{_f(row['median_lead_h'], 1)} |"
        )
    lines += [
        "",
        f"Calibration: Brier score {_f(r['calibration']['brier'], 4)} "
        f"(prevalence {_f(r['scores']['model']['prevalence'], 4)}); see `calibration.png`.",
        "",
        "## By syndrome (which deteriorations are hardest)",
        "",
        "| syndrome | patients | events | model AUROC | NEWS2 AUROC | model sens. "
        "| NEWS2 ≥ 5 sens. | NEWS2 ≥ 7 sens. |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for name, g in r["by_syndrome"].items():
        if name == "none":
            continue
        lines.append(
            f"| {name} | {g['patients']} | {g['events']} | {_f(g['model'].get('auroc'))} | "
            f"{_f(g['NEWS2 ≥ 5'].get('auroc'))} | {_f(g['model']['sensitivity'], 2)} | "
            f"{_f(g['NEWS2 ≥ 5']['sensitivity'], 2)} | {_f(g['NEWS2 ≥ 7']['sensitivity'], 2)} |"
        )
    lines += [
        "",
        "## Alert burden by chronic baseline",
        "",
        "| baseline | patients | model | NEWS2 ≥ 5 | NEWS2 ≥ 7 |",
        "| --- | --- | --- | --- | --- |",
    ]
    for name, g in r["by_baseline"].items():
        lines.append(
            f"| {name} | {g['patients']} | {_f(g['model']['alerts_per_35_patient_days'], 2)} | "
            f"{_f(g['NEWS2 ≥ 5']['alerts_per_35_patient_days'], 2)} | "
            f"{_f(g['NEWS2 ≥ 7']['alerts_per_35_patient_days'], 2)} |"
        )
    lines += ["", "(alerts per 35 patient-days, all patients of that baseline)", ""]
    lines += [f"![{p}]({p})" for p in r["plots"]]
    return "\n".join(lines) + "\n"
