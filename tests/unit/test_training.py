"""`vigil train vitals` and `vigil evaluate` on a small simulated cohort (no services)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from models import cohort
from models.dataset import Dataset, build
from models.evaluate import evaluate
from models.manifest import install
from models.registry import ModelSlot
from models.train_vitals import Trained, split_patients, train
from models.vitals_model import MODEL_FEATURES, VitalsModel


@pytest.fixture(scope="module")
def small_cohort(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("cohort")
    cohort.write(cohort.CohortSpec(patients=150, days=2.0, seed=21), directory)
    return directory


@pytest.fixture(scope="module")
def data(small_cohort: Path) -> Dataset:
    return build(small_cohort)


@pytest.fixture(scope="module")
def trained(small_cohort: Path) -> Trained:
    return train(small_cohort, seed=4)


def test_training_is_deterministic_for_a_seed(small_cohort, trained) -> None:
    a, b = trained, train(small_cohort, seed=4)
    assert a.artifact == b.artifact
    assert a.manifest.version == b.manifest.version
    assert a.manifest.metrics == b.manifest.metrics
    assert a.manifest.calibration == b.manifest.calibration
    other = train(small_cohort, seed=5)
    assert other.artifact != a.artifact


def test_manifest_records_inputs_data_fingerprint_and_held_out_metrics(trained, data) -> None:
    m = trained.manifest
    assert m.feature_names == list(MODEL_FEATURES)
    assert m.training["cohort"]["sha256"]["vitals.jsonl"]
    assert m.training["seed"] == 4 and m.training["rounds"] >= 1
    assert m.metrics["split"] == "held_out"
    assert 0.5 < m.metrics["auroc"] <= 1
    assert m.operating_threshold is not None and 0 < m.operating_threshold < 1
    splits = m.training["splits"]
    assert sum(s["patients"] for s in splits.values()) == len(np.unique(data.patient))


def test_split_is_by_patient_and_each_split_has_events(data) -> None:
    train, held_out = split_patients(data, seed=0)
    assert len(train) + len(held_out) == len(np.unique(data.patient))
    assert not set(train) & set(held_out)
    assert len(held_out) == pytest.approx(0.2 * len(np.unique(data.patient)), abs=2)
    for part in (train, held_out):
        assert any(data.outcomes[p].event_at is not None for p in part)


def test_labels_mark_checks_within_12h_before_the_event_and_none_after(data) -> None:
    hour = 3_600_000_000
    for row in range(len(data.y)):
        outcome = data.outcomes[data.patient[row]]
        if outcome.event_at is None:
            assert data.y[row] == 0
            continue
        event = int(outcome.event_at.timestamp() * 1_000_000)
        assert data.check_us[row] < event
        assert data.y[row] == (event - data.check_us[row] <= 12 * hour)


def test_evaluate_writes_report_and_plots(trained, tmp_path) -> None:
    models = tmp_path / "models"
    install(models, trained.manifest, trained.artifact)
    slot = ModelSlot(models, "vitals", MODEL_FEATURES, VitalsModel.load)
    slot.refresh(force=True)
    held_out = tmp_path / "held-out"
    cohort.write(cohort.CohortSpec(patients=80, days=2.0, seed=22), held_out)
    report = evaluate(held_out, slot.current, tmp_path / "eval", "vigil evaluate (test)")
    for name in ("report.md", "report.json", "roc.png", "pr.png", "calibration.png"):
        assert (tmp_path / "eval" / name).stat().st_size > 0
    assert set(report["scores"]) == {"model", "NEWS2 ≥ 5", "NEWS2 ≥ 7"}
    news2 = report["scores"]["NEWS2 ≥ 5"]
    assert news2["auroc"] == report["scores"]["NEWS2 ≥ 7"]["auroc"]
    assert news2["alerts"] >= report["scores"]["NEWS2 ≥ 7"]["alerts"]
    text = (tmp_path / "eval" / "report.md").read_text()
    assert "| model |" in text and "By syndrome" in text
