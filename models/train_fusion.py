"""`vigil train fusion`: the logistic stacker of models/fusion.py, over the installed
modality models' scores on a multimodal cohort those models never saw.

Rows are the vitals model's patient-hour checks (models/dataset.py), each with the vitals
model's probability, the score of the patient's newest note and newest film up to the
check (what the worker keeps in Redis: the latest by `written_at` / `acquired_at`, kept
until a newer one comes), and the NEWS2 total; label = the event within the horizon.
The stacker is fitted on all of them; its metrics are out-of-fold over five patient
folds (each row scored by a stacker fitted without its patient). Beside the fused score,
one-modality stackers (each modality's inputs alone, fitted on the same rows) are stored
in the manifest, so that `vigil evaluate --multimodal` compares each modality alone with the
fusion on a fair footing: the same calibration, the same handling of "none yet".

Why a cohort of its own: a stacker fitted on the scores of patients a modality model was
trained on learns to trust that model's over-confident scores on them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import orjson
from sklearn.linear_model import LogisticRegression

from features.samples import to_us
from models import clinical_metrics
from models.dataset import Dataset, build
from models.eventlog import read_info
from models.fusion import FUSION_INPUTS, RECENCY_H, FusionModel, fusion_matrix, stacked
from models.image_model import ImageModel
from models.imaging_data import STUDIES_FILE
from models.manifest import ModelManifest, install, sha256, version_name
from models.notes_corpus import NOTES_FILE
from models.text_model import NotesModel
from models.train_imaging import study_scores
from models.train_notes import note_scores
from models.vitals_model import VitalsModel

FOLDS = 5
"""The metrics are out-of-fold over patient folds: a 20 % split of a ward cohort holds a
couple of dozen patients with an event, too few to tell two stackers apart."""
L2 = 0.005
"""Ridge penalty on the mean log-loss, over inputs standardised on the training rows:
½·L2·‖w‖². Strong on purpose: notes and films add little beside the vitals model (their
scores follow the same hidden state), and a lightly penalised stacker (sklearn's C=1 on
raw inputs) learnt large presence and recency weights that helped out of fold on its own
cohort but cost AUROC against the vitals model alone on another. Chosen among penalties,
interactions, splines and boosted stackers by a rule fixed before any test cohort was
scored: the best worst case of the gain over vitals alone on a validation cohort and out
of fold (issue #4 note of 2026-11-24)."""
SINGLE = {
    "vitals": ("logit_vitals",),
    "notes": ("logit_notes", "has_notes", "recent_notes", "logit_notes_recent"),
    "imaging": ("logit_imaging", "has_imaging", "recent_imaging", "logit_imaging_recent"),
    "news2": ("news2_total",),
}
"""Each modality alone: its inputs of FUSION_INPUTS."""


@dataclass(frozen=True)
class ModalityRows:
    data: Dataset
    vitals: np.ndarray
    """The vitals model's probability at each check."""
    notes: np.ndarray
    """The newest note's score at each check; NaN before the patient's first note."""
    notes_at_us: np.ndarray
    """When that note was written; NaN before the first."""
    imaging: np.ndarray
    """The newest film's score at each check; NaN before the patient's first film."""
    imaging_at_us: np.ndarray

    @property
    def x(self) -> np.ndarray:
        return fusion_matrix(
            self.vitals,
            self.notes,
            self.notes_at_us,
            self.imaging,
            self.imaging_at_us,
            self.data.news2_total,
            self.data.as_of_us,
        )

    def take(self, rows: np.ndarray) -> ModalityRows:
        return ModalityRows(
            self.data.take(rows),
            self.vitals[rows],
            self.notes[rows],
            self.notes_at_us[rows],
            self.imaging[rows],
            self.imaging_at_us[rows],
        )

    def of_patients(self, patients: np.ndarray) -> ModalityRows:
        return self.take(np.flatnonzero(np.isin(self.data.patient, patients)))


@dataclass(frozen=True)
class Trained:
    manifest: ModelManifest
    artifact: bytes
    model: FusionModel


def latest_at_checks(
    data: Dataset, scored: list[tuple[str, datetime, float]]
) -> tuple[np.ndarray, np.ndarray]:
    """Per row, the score and time (µs) of the patient's newest item at or before the
    check; NaN if none yet (the worker's rule: a late item never replaces a newer one)."""
    index = {o.patient_id: i for i, o in enumerate(data.outcomes)}
    by_patient: dict[int, list[tuple[int, float]]] = {}
    for patient_id, at, score in scored:
        if patient_id in index:
            by_patient.setdefault(index[patient_id], []).append((to_us(at), score))
    score_out, at_out = np.full(len(data.y), np.nan), np.full(len(data.y), np.nan)
    for patient, items in by_patient.items():
        items.sort()
        times = np.array([t for t, _ in items], dtype=np.int64)
        scores = np.array([s for _, s in items])
        rows = np.flatnonzero(data.patient == patient)
        newest = np.searchsorted(times, data.check_us[rows], side="right") - 1
        seen = newest >= 0
        score_out[rows[seen]] = scores[newest[seen]]
        at_out[rows[seen]] = times[newest[seen]]
    return score_out, at_out


def modality_rows(
    cohort: Path,
    vitals: VitalsModel,
    notes: NotesModel | None,
    imaging: ImageModel | None,
) -> ModalityRows:
    """Every check of the cohort with each modality's score as the worker would hold it;
    a modality whose model or file is missing is absent everywhere."""
    data = build(cohort, horizon_h=vitals.manifest.horizon_h or 12.0)
    absent = np.full(len(data.y), np.nan), np.full(len(data.y), np.nan)
    note_score = (
        latest_at_checks(data, note_scores(notes, cohort))
        if notes is not None and (cohort / NOTES_FILE).exists()
        else absent
    )
    image_score = (
        latest_at_checks(data, study_scores(imaging, cohort))
        if imaging is not None and (cohort / STUDIES_FILE).exists()
        else absent
    )
    return ModalityRows(data, vitals.probabilities(data.x), *note_score, *image_score)


def fit_stacker(x: np.ndarray, y: np.ndarray) -> tuple[list[float], float]:
    """Ridge logistic regression on standardised inputs, returned on the raw inputs' scale
    (what `stacked` and the worker take)."""
    mean, sd = x.mean(axis=0), x.std(axis=0)
    sd[sd == 0] = 1.0  # a modality absent from every row: its columns are all zero
    fit = LogisticRegression(C=1 / (L2 * len(y)), max_iter=1000).fit((x - mean) / sd, y)
    coef = fit.coef_[0] / sd
    return [float(c) for c in coef], float(fit.intercept_[0] - coef @ mean)


def fit_stackers(x: np.ndarray, y: np.ndarray) -> dict[str, dict[str, Any]]:
    """The fused stacker on every input and one per modality on its own inputs (zero
    weight on the others), each {"coef", "intercept"} in FUSION_INPUTS order."""
    coef, intercept = fit_stacker(x, y)
    out: dict[str, dict[str, Any]] = {"fused": {"coef": coef, "intercept": intercept}}
    for name, inputs in SINGLE.items():
        columns = [FUSION_INPUTS.index(i) for i in inputs]
        own, intercept = fit_stacker(x[:, columns], y)
        full = [0.0] * len(FUSION_INPUTS)
        for column, c in zip(columns, own, strict=True):
            full[column] = c
        out[name] = {"coef": full, "intercept": intercept}
    return out


def presence_calibration(rows: ModalityRows, probability: np.ndarray) -> dict[str, Any]:
    """Mean fused probability against the observed rate, per pattern of modalities present:
    a stacker biased by absence would be off in one of the groups."""
    has_notes, has_imaging = ~np.isnan(rows.notes), ~np.isnan(rows.imaging)
    groups = {
        "vitals only": ~has_notes & ~has_imaging,
        "vitals + notes": has_notes & ~has_imaging,
        "vitals + imaging": ~has_notes & has_imaging,
        "all three": has_notes & has_imaging,
    }
    return {
        name: {
            "rows": int(mask.sum()),
            "observed": float(rows.data.y[mask].mean()) if mask.any() else None,
            "predicted": float(probability[mask].mean()) if mask.any() else None,
        }
        for name, mask in groups.items()
    }


def scores_by_modality(
    rows: ModalityRows, stackers: dict[str, dict[str, Any]]
) -> dict[str, np.ndarray]:
    """Each stacker's probabilities on the same rows."""
    x = rows.x
    return {name: stacked(x, w["coef"], w["intercept"]) for name, w in stackers.items()}


def metrics(rows: ModalityRows, scores: dict[str, np.ndarray]) -> dict[str, Any]:
    has = {"notes": ~np.isnan(rows.notes), "imaging": ~np.isnan(rows.imaging)}
    out: dict[str, Any] = {"rows": len(rows.data.y)}
    out["coverage"] = {name: float(mask.mean()) for name, mask in has.items()}
    out["by_score"] = {
        name: {
            **clinical_metrics.discrimination(rows.data.y, score),
            "brier": clinical_metrics.calibration(rows.data.y, score)["brier"],
        }
        for name, score in scores.items()
    }
    out["auroc"] = out["by_score"]["fused"]["auroc"]
    out["presence_calibration"] = presence_calibration(rows, scores["fused"])
    return out


def patient_folds(data: Dataset, seed: int) -> np.ndarray:
    """Per row, its patient's fold; each fold gets its share of the patients with an event."""
    rng = np.random.default_rng(seed)
    patients = np.unique(data.patient)
    has_event = np.array([data.outcomes[p].event_at is not None for p in patients])
    fold_of = {}
    for group in (patients[has_event], patients[~has_event]):
        for i, patient in enumerate(rng.permutation(group)):
            fold_of[int(patient)] = i % FOLDS
    return np.array([fold_of[int(p)] for p in data.patient], dtype=np.int8)


def out_of_fold(x: np.ndarray, y: np.ndarray, folds: np.ndarray) -> dict[str, np.ndarray]:
    """Every row scored by the fused and single-modality stackers fitted without its
    patient's fold."""
    out: dict[str, np.ndarray] = {}
    for fold in range(FOLDS):
        test = folds == fold
        for name, w in fit_stackers(x[~test], y[~test]).items():
            out.setdefault(name, np.empty(len(y)))[test] = stacked(
                x[test], w["coef"], w["intercept"]
            )
    return out


def train(
    cohort: Path,
    vitals: VitalsModel,
    notes: NotesModel | None,
    imaging: ImageModel | None,
    seed: int = 0,
) -> Trained:
    rows = modality_rows(cohort, vitals, notes, imaging)
    x, y = rows.x, rows.data.y
    folds = patient_folds(rows.data, seed)
    if len(np.unique(folds[y == 1])) < FOLDS:
        raise ValueError(f"{cohort}: too few deterioration events to fit and test a stacker")
    single = fit_stackers(x, y)
    fused = single.pop("fused")
    artifact = orjson.dumps({"inputs": list(FUSION_INPUTS), **fused})
    created = datetime.now(UTC)
    base = {"vitals": vitals.version}
    base |= {"notes": notes.version} if notes is not None else {}
    base |= {"imaging": imaging.version} if imaging is not None else {}
    manifest = ModelManifest(
        name="fusion",
        version=version_name("stacker", created, artifact),
        created=created,
        kind="logistic-stacker",
        artifact="fusion.json",
        artifact_sha256=sha256(artifact),
        feature_names=list(FUSION_INPUTS),
        preprocessing={"recency_h": RECENCY_H},
        horizon_h=rows.data.horizon_h,
        training={
            "seed": seed,
            "l2": L2,
            "cohort": read_info(cohort),
            "base_models": base,
            "rows": len(y),
            "folds": FOLDS,
            "single_modality": single,
        },
        metrics=metrics(rows, out_of_fold(x, y, folds)),
    )
    model = FusionModel(manifest, fused["coef"], fused["intercept"])
    return Trained(manifest, artifact, model)


def train_and_install(
    cohort: Path,
    model_dir: Path,
    vitals: VitalsModel,
    notes: NotesModel | None,
    imaging: ImageModel | None,
    seed: int = 0,
) -> tuple[Path, Trained]:
    trained = train(cohort, vitals, notes, imaging, seed)
    return install(model_dir, trained.manifest, trained.artifact), trained
