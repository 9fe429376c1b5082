"""`vigil train fusion` and `vigil evaluate --multimodal` on a small multimodal cohort,
with a trained vitals model and small notes and image models (no services)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest

from features.samples import to_us
from models import cohort
from models.dataset import build
from models.evaluate_fusion import evaluate
from models.fusion import FUSION_INPUTS, FusionModel, stacked
from models.image_model import IMAGE_INPUTS, ImageModel
from models.imaging_data import write_images
from models.manifest import install
from models.notes_corpus import write_notes
from models.registry import ModelSlot
from models.text_model import NOTES_INPUTS, NotesModel
from models.train_fusion import (
    FOLDS,
    ModalityRows,
    Trained,
    fit_stacker,
    latest_at_checks,
    modality_rows,
    patient_folds,
    presence_calibration,
    train,
)
from models.train_vitals import train as train_vitals
from models.vitals_model import MODEL_FEATURES, VitalsModel
from tests.modelkit import tiny_image_model, tiny_notes_model

SPEC = cohort.CohortSpec(patients=120, days=2.0, seed=41, deteriorating=0.3)


@pytest.fixture(scope="module")
def ward(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("multimodal")
    cohort.write(SPEC, directory)
    write_notes(SPEC, directory)
    write_images(SPEC, directory)
    return directory


@pytest.fixture(scope="module")
def models(
    ward: Path, tmp_path_factory: pytest.TempPathFactory
) -> tuple[VitalsModel, NotesModel, ImageModel]:
    folder = tmp_path_factory.mktemp("models")
    vitals = train_vitals(ward, seed=1)
    install(folder, vitals.manifest, vitals.artifact)
    install(folder, *tiny_notes_model(3))
    install(folder, *tiny_image_model(3))
    loaded = []
    for name, inputs, loader in (
        ("vitals", MODEL_FEATURES, VitalsModel.load),
        ("notes", NOTES_INPUTS, NotesModel.load),
        ("imaging", IMAGE_INPUTS, ImageModel.load),
    ):
        slot = ModelSlot(folder, name, inputs, loader, poll_s=0)
        slot.refresh(force=True)
        loaded.append(slot.current)
    return tuple(loaded)  # type: ignore[return-value]


@pytest.fixture(scope="module")
def rows(ward: Path, models) -> ModalityRows:
    return modality_rows(ward, *models)


@pytest.fixture(scope="module")
def trained(ward: Path, models) -> Trained:
    return train(ward, *models, seed=2)


def test_latest_at_checks_takes_the_newest_item_up_to_each_check(ward) -> None:
    data = build(ward)
    patient = data.outcomes[data.patient[0]]
    checks = data.check_us[data.patient == data.patient[0]]
    first = patient.admitted_at + timedelta(microseconds=int(checks[1] - checks[0]) // 2)
    items = [  # out of order: a late item never replaces a newer one
        (patient.patient_id, first + timedelta(hours=3), 0.9),
        (patient.patient_id, first, 0.2),
        ("not-in-cohort", first, 0.5),
    ]
    mine = data.patient == data.patient[0]
    score, at = latest_at_checks(data, items)
    second = to_us(first + timedelta(hours=3))
    newest = checks >= second
    expected = np.where(newest, 0.9, np.where(checks >= to_us(first), 0.2, np.nan))
    np.testing.assert_array_equal(score[mine], expected)
    expected_at = np.where(newest, second, np.where(checks >= to_us(first), to_us(first), np.nan))
    np.testing.assert_array_equal(at[mine], expected_at)
    assert np.isnan(score[~mine]).all() and np.isnan(at[~mine]).all()


def test_rows_carry_each_modality_as_the_worker_would_hold_it(rows) -> None:
    has_notes, has_imaging = ~np.isnan(rows.notes), ~np.isnan(rows.imaging)
    assert 0 < has_notes.mean() < 1 and 0 < has_imaging.mean() < 1
    # once a patient has a note, every later check has one
    for patient in np.unique(rows.data.patient):
        seen = has_notes[rows.data.patient == patient]
        assert (np.diff(seen.astype(int)) >= 0).all()
    x = rows.x
    assert x.shape == (len(rows.data.y), len(FUSION_INPUTS))
    np.testing.assert_array_equal(x[:, FUSION_INPUTS.index("has_notes")], has_notes)
    assert (x[~has_imaging, FUSION_INPUTS.index("logit_imaging")] == 0).all()


def test_folds_keep_each_patient_whole_and_spread_the_events(rows) -> None:
    folds = patient_folds(rows.data, seed=0)
    for patient in np.unique(rows.data.patient):
        assert len(np.unique(folds[rows.data.patient == patient])) == 1
    with_event = [rows.data.outcomes[p].event_at is not None for p in rows.data.patient]
    assert set(folds[np.array(with_event)]) == set(range(FOLDS))


def test_training_is_deterministic_and_records_base_models_and_metrics(
    ward, models, trained
) -> None:
    again = train(ward, *models, seed=2)
    assert again.artifact == trained.artifact
    m = trained.manifest
    assert m.name == "fusion" and m.feature_names == list(FUSION_INPUTS)
    assert m.training["base_models"] == {
        "vitals": models[0].version,
        "notes": models[1].version,
        "imaging": models[2].version,
    }
    assert m.training["cohort"]["sha256"]["vitals.jsonl"]
    assert set(m.metrics["by_score"]) == {"fused", "vitals", "notes", "imaging", "news2"}
    assert m.training["folds"] == 5 and 0.5 < m.metrics["auroc"] <= 1


def test_each_single_modality_stacker_weighs_only_its_own_inputs(trained) -> None:
    single = trained.manifest.training["single_modality"]
    for name, own in (
        ("vitals", {"logit_vitals"}),
        ("notes", {"logit_notes", "has_notes", "recent_notes", "logit_notes_recent"}),
        ("imaging", {"logit_imaging", "has_imaging", "recent_imaging", "logit_imaging_recent"}),
        ("news2", {"news2_total"}),
    ):
        weights = single[name]["coef"]
        assert {FUSION_INPUTS[i] for i, w in enumerate(weights) if w != 0} <= own, name


def test_installed_stacker_loads_and_fuses_as_trained(trained, rows, tmp_path) -> None:
    install(tmp_path, trained.manifest, trained.artifact)
    slot = ModelSlot(tmp_path, "fusion", FUSION_INPUTS, FusionModel.load, poll_s=0)
    slot.refresh(force=True)
    loaded = slot.current
    assert loaded is not None and loaded.version == trained.manifest.version
    np.testing.assert_allclose(loaded.probabilities(rows.x), trained.model.probabilities(rows.x))
    probabilities = loaded.probabilities(rows.x)
    for i in range(0, len(rows.data.y), 37):  # the worker's one-patient path agrees
        notes = None if np.isnan(rows.notes[i]) else (rows.notes[i], int(rows.notes_at_us[i]))
        imaging = (
            None if np.isnan(rows.imaging[i]) else (rows.imaging[i], int(rows.imaging_at_us[i]))
        )
        total, as_of = int(rows.data.news2_total[i]), int(rows.data.as_of_us[i])
        fused = loaded.fuse(rows.vitals[i], notes, imaging, total, as_of)
        assert fused == pytest.approx(probabilities[i])


def test_presence_calibration_compares_each_group_with_its_own_rate(rows) -> None:
    calibration = presence_calibration(rows, np.full(len(rows.data.y), 0.25))
    assert sum(g["rows"] for g in calibration.values()) == len(rows.data.y)
    for group in calibration.values():
        assert group["rows"] == 0 or group["predicted"] == pytest.approx(0.25)


def test_multimodal_evaluation_reports_each_modality_alone_and_fused(
    ward, models, trained, tmp_path
) -> None:
    report = evaluate(ward, *models, trained.model, tmp_path, "vigil evaluate --multimodal")
    assert set(report["by_score"]) == {"fused", "vitals", "notes", "imaging", "news2"}
    assert report["bar"]["best_single"] in {"vitals", "notes", "imaging"}
    assert report["bar"]["met"] == (report["auroc"] >= report["bar"]["best_single_auroc"])
    low, high = report["bar"]["gain_95ci"]
    assert -1 <= low <= high <= 1
    assert "95 % interval by resampling patients" in (tmp_path / "report.md").read_text()
    assert (tmp_path / "report.md").read_text().startswith("# Multimodal evaluation")
    assert (tmp_path / "roc.png").stat().st_size > 1000
    assert report["where_present"]["notes"]["rows"] > 0


def test_the_stackers_penalty_does_not_depend_on_an_inputs_units() -> None:
    """Inputs are standardised before the ridge penalty: a column in other units (a NEWS2
    total against log-odds) gets the same fit, and an input absent from every row (a
    modality with no model) gets no weight."""
    rng = np.random.default_rng(0)
    x = np.column_stack([rng.normal(size=4000), rng.normal(size=4000), np.zeros(4000)])
    y = (x[:, 0] + 0.5 * x[:, 1] + rng.logistic(size=4000) > 2.5).astype(float)
    coef, intercept = fit_stacker(x, y)
    rescaled = x * [1.0, 1000.0, 1.0]
    coef_rescaled, intercept_rescaled = fit_stacker(rescaled, y)
    np.testing.assert_allclose(
        stacked(rescaled, coef_rescaled, intercept_rescaled), stacked(x, coef, intercept), rtol=1e-4
    )
    assert coef[2] == 0.0
    assert coef[0] > coef[1] > 0
