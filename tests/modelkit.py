"""Small models for tests that need one installed without training on a cohort."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import orjson
import xgboost as xgb

from models.manifest import ModelManifest, sha256
from models.vitals_model import MODEL_FEATURES

T0 = datetime(2026, 11, 23, tzinfo=UTC)


def tiny_model(seed: int, features: list[str] | None = None) -> tuple[ModelManifest, bytes]:
    """A 10-tree booster on random data over the real inputs; `created` grows with the seed."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(300, len(MODEL_FEATURES)))
    x[rng.random(x.shape) < 0.1] = np.nan
    y = (np.nan_to_num(x[:, 0]) + rng.normal(size=300) > 0.5).astype(int)
    dm = xgb.DMatrix(x, label=y, feature_names=list(MODEL_FEATURES))
    booster = xgb.train({"max_depth": 3, "seed": seed, "nthread": 1}, dm, num_boost_round=10)
    artifact = bytes(booster.save_raw("ubj"))
    manifest = ModelManifest(
        name="vitals",
        version=f"test-{seed}",
        created=T0 + timedelta(minutes=seed),
        kind="xgboost",
        artifact="model.ubj",
        artifact_sha256=sha256(artifact),
        feature_names=features if features is not None else list(MODEL_FEATURES),
        calibration={"a": 1.0, "b": 0.0},
    )
    return manifest, artifact


def tiny_notes_model(seed: int) -> tuple[ModelManifest, bytes]:
    """A notes head with random weights over the real encoder's inputs."""
    import torch

    from models.text_model import NOTES_INPUTS, head_bytes, head_network

    torch.manual_seed(seed)
    artifact = head_bytes(head_network())
    manifest = ModelManifest(
        name="notes",
        version=f"notes-test-{seed}",
        created=T0 + timedelta(minutes=seed),
        kind="torch-mlp",
        artifact="head.pt",
        artifact_sha256=sha256(artifact),
        feature_names=list(NOTES_INPUTS),
        preprocessing={"max_tokens": 256},
        calibration={"a": 1.0, "b": 0.0, "prevalence": 0.05},
    )
    return manifest, artifact


def tiny_image_model(seed: int) -> tuple[ModelManifest, bytes]:
    """An untrained ChestNet exported as the worker loads it."""
    import torch

    from models.image_model import IMAGE_INPUTS, IMAGE_SIZE, LABELS, ChestNet, export

    torch.manual_seed(seed)
    artifact = export(ChestNet(len(LABELS)), IMAGE_SIZE)
    manifest = ModelManifest(
        name="imaging",
        version=f"imaging-test-{seed}",
        created=T0 + timedelta(minutes=seed),
        kind="torch-export-cnn",
        artifact="model.pt2",
        artifact_sha256=sha256(artifact),
        feature_names=list(IMAGE_INPUTS),
        preprocessing={"size": IMAGE_SIZE, "mean": 0.5, "std": 0.25},
        labels=list(LABELS),
    )
    return manifest, artifact


FUSION_COEF = [1.0, 0.8, -0.5, 0.3, 0.4, 0.6, 0.2, 0.5, 0.3, 0.1]


def tiny_fusion_model(
    coef: list[float] = FUSION_COEF, intercept: float = -1.0, recency: dict | None = None
) -> tuple[ModelManifest, bytes]:
    """A fusion stacker with given weights (FUSION_INPUTS order)."""
    from models.fusion import FUSION_INPUTS, RECENCY_H

    artifact = orjson.dumps({"coef": coef, "intercept": intercept})
    manifest = ModelManifest(
        name="fusion",
        version="fusion-test",
        created=T0,
        kind="logistic-stacker",
        artifact="fusion.json",
        artifact_sha256=sha256(artifact),
        feature_names=list(FUSION_INPUTS),
        preprocessing={"recency_h": RECENCY_H if recency is None else recency},
    )
    return manifest, artifact
