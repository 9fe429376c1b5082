"""`vigil evaluate --multimodal`: each modality alone against the fused score, on a
held-out multimodal cohort (vitals, notes and films).

"Alone" means the one-input stacker the fusion training fitted beside the fusion (stored
in the fusion manifest): the same rows, the same calibration and the same handling of a
modality that has no score yet, so the comparison is fair. Each modality is also compared
with the fusion on the rows where it is present. Writes `report.md`, `report.json` and a
ROC plot; nothing is tuned on this cohort.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only: no display on servers and CI

import matplotlib.pyplot as plt
import numpy as np
import orjson
from sklearn.metrics import roc_curve

from models import clinical_metrics as cm
from models.eventlog import read_info
from models.fusion import FusionModel
from models.image_model import ImageModel
from models.text_model import NotesModel
from models.train_fusion import metrics, modality_rows, scores_by_modality
from models.vitals_model import VitalsModel

LABELS = {
    "fused": "fused",
    "vitals": "vitals alone",
    "notes": "notes alone",
    "imaging": "imaging alone",
    "news2": "NEWS2 alone",
}


def evaluate(
    cohort: Path,
    vitals: VitalsModel,
    notes: NotesModel | None,
    imaging: ImageModel | None,
    fusion: FusionModel,
    out: Path,
    command: str,
) -> dict[str, Any]:
    out.mkdir(parents=True, exist_ok=True)
    rows = modality_rows(cohort, vitals, notes, imaging)
    fused = {"coef": fusion.coef.tolist(), "intercept": fusion.intercept}
    scores = scores_by_modality(
        rows, {"fused": fused, **fusion.manifest.training["single_modality"]}
    )
    y = rows.data.y
    where_present = {}
    for name, values in (("notes", rows.notes), ("imaging", rows.imaging)):
        present = ~np.isnan(values)
        both = 0 < y[present].sum() < present.sum()

        def auroc(score: np.ndarray, present: np.ndarray = present, both: bool = both) -> Any:
            return cm.discrimination(y[present], score[present])["auroc"] if both else None

        where_present[name] = {
            "rows": int(present.sum()),
            "positive_rows": int(y[present].sum()),
            "alone_auroc": auroc(values),
            "vitals_auroc": auroc(scores["vitals"]),
            "fused_auroc": auroc(scores["fused"]),
        }
    report: dict[str, Any] = {
        "command": command,
        "models": {
            "vitals": vitals.version,
            "notes": notes.version if notes else None,
            "imaging": imaging.version if imaging else None,
            "fusion": fusion.version,
        },
        "fusion_base_models": fusion.manifest.training.get("base_models", {}),
        "training_cohorts": {
            name: _cohort_of(model)
            for name, model in (
                ("vitals", vitals),
                ("notes", notes),
                ("imaging", imaging),
                ("fusion", fusion),
            )
            if model is not None
        },
        "cohort": read_info(cohort),
        "rows": len(y),
        "positive_rows": int(y.sum()),
        "patients": len(np.unique(rows.data.patient)),
        **metrics(rows, scores),
        "where_present": where_present,
    }
    single = {k: v["auroc"] for k, v in report["by_score"].items() if k not in ("fused", "news2")}
    best = max(single, key=lambda k: single[k])
    report["bar"] = {
        "fused_auroc": report["auroc"],
        "best_single": best,
        "best_single_auroc": single[best],
        "met": report["auroc"] >= single[best],
        "gain_95ci": cm.auroc_gain_interval(rows.data, scores["fused"], scores[best]),
    }
    report["plots"] = {"roc": _roc_plot(y, scores, out / "roc.png")}
    (out / "report.json").write_bytes(
        orjson.dumps(report, option=orjson.OPT_INDENT_2 | orjson.OPT_SERIALIZE_NUMPY)
    )
    (out / "report.md").write_text(markdown(report))
    return report


def _cohort_of(model: Any) -> dict[str, Any]:
    cohort = model.manifest.training.get("cohort", {})
    spec = cohort.get("spec", {})
    return {"patients": cohort.get("patients"), "days": spec.get("days"), "seed": spec.get("seed")}


def _roc_plot(y: np.ndarray, scores: dict[str, np.ndarray], path: Path) -> str:
    fig, ax = plt.subplots(figsize=(5, 5))
    for name, score in scores.items():
        fpr, tpr, _ = roc_curve(y, score)
        ax.plot(fpr, tpr, label=LABELS[name])
    ax.plot([0, 1], [0, 1], color="grey", linestyle=":")
    ax.set(xlabel="1 - specificity", ylabel="sensitivity", title="ROC by modality")
    ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path.name


def _f(value: float | None, digits: int = 3) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def markdown(r: dict[str, Any]) -> str:
    bar = r["bar"]
    verdict = "met" if bar["met"] else "NOT met"
    lines = [
        "# Multimodal evaluation: each modality alone and fused",
        "",
        f"Command: `{r['command']}`",
        "",
        f"Held-out cohort: {r['cohort'].get('patients')} patients, seed "
        f"{r['cohort'].get('spec', {}).get('seed')}; {r['rows']} patient-hour checks, "
        f"{r['positive_rows']} with the event within the horizon. Models: "
        + ", ".join(f"{k} `{v}`" for k, v in r["models"].items() if v)
        + ".",
        "",
        "Training cohorts (simulated): "
        + "; ".join(
            f"{name} {c['patients']} patients, {c['days']} days, seed {c['seed']}"
            for name, c in r["training_cohorts"].items()
        )
        + ".",
        "",
        f"**Bar (fused AUROC ≥ best single modality): {verdict}.** Fused "
        f"{bar['fused_auroc']:.3f}, best single ({bar['best_single']}) "
        f"{bar['best_single_auroc']:.3f}; the difference's 95 % interval by resampling "
        f"patients: {bar['gain_95ci'][0]:+.3f} to {bar['gain_95ci'][1]:+.3f}.",
        "",
        "| score | AUROC | AUPRC | Brier |",
        "| --- | --- | --- | --- |",
    ]
    for name, row in r["by_score"].items():
        lines.append(
            f"| {LABELS[name]} | {_f(row['auroc'])} | {_f(row['auprc'])} | {_f(row['brier'], 4)} |"
        )
    lines += [
        "",
        "Each modality alone is its one-input stacker from the fusion training: a check "
        'with no note (or no film) yet gets that stacker\'s calibrated "none yet" risk.',
        "",
        "## Where the modality is present",
        "",
        "| modality | checks with it | of which positive | its own score's AUROC "
        "| vitals alone AUROC | fused AUROC |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for name, row in r["where_present"].items():
        lines.append(
            f"| {name} | {row['rows']} ({row['rows'] / r['rows']:.0%}) | {row['positive_rows']}"
            f" | {_f(row['alone_auroc'])} | {_f(row['vitals_auroc'])} | {_f(row['fused_auroc'])} |"
        )
    lines += [
        "",
        "## Calibration by the modalities present (no bias from absence)",
        "",
        "| present | checks | observed rate | mean fused probability |",
        "| --- | --- | --- | --- |",
    ]
    for name, row in r["presence_calibration"].items():
        lines.append(f"| {name} | {row['rows']} | {_f(row['observed'])} | {_f(row['predicted'])} |")
    lines += ["", f"![ROC]({r['plots']['roc']})", ""]
    return "\n".join(lines)
