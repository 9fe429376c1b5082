"""The JSON manifest beside every model artifact, and the atomic install of both."""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from datetime import datetime
from pathlib import Path
from typing import Any

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

MANIFEST_FILE = "manifest.json"


class ModelManifest(BaseModel):
    model_config = ConfigDict(extra="forbid", protected_namespaces=())

    name: str = Field(pattern=r"^[a-z0-9_-]+$")
    """What the model scores: `vitals`, later `notes`, `imaging`, `fusion`."""
    version: str = Field(pattern=r"^[A-Za-z0-9._-]+$")
    created: AwareDatetime
    kind: str
    artifact: str
    """File name of the model beside the manifest."""
    artifact_sha256: str
    feature_names: list[str]
    """The inputs in order; a worker refuses a model whose inputs differ from what it builds."""
    preprocessing: dict[str, Any] = {}
    """How raw input becomes the model's input (image size and normalisation, encoder and
    chunking for text), so that a worker prepares exactly what the model was trained on."""
    labels: list[str] = []
    """Output names of a multi-output model, in order."""
    calibration: dict[str, float] = {}
    horizon_h: float | None = None
    operating_threshold: float | None = None
    """Probability at which the training cohort's held-out patients got at most one alert
    per 35 patient-days (see models/evaluate.py for the alert rule)."""
    training: dict[str, Any] = {}
    """Data fingerprint (cohort.json), seed, parameters, rows and patients per split."""
    metrics: dict[str, Any] = {}


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def install(model_dir: Path, manifest: ModelManifest, artifact: bytes) -> Path:
    """Write `<model_dir>/<name>/<version>/` so that a worker polling the directory sees
    either nothing or the complete model: files go to a temporary folder that is renamed."""
    parent = model_dir / manifest.name
    parent.mkdir(parents=True, exist_ok=True)
    target = parent / manifest.version
    if target.exists():
        raise FileExistsError(f"{target} already exists; versions are immutable")
    staging = Path(tempfile.mkdtemp(prefix=".staging-", dir=parent))
    try:
        (staging / manifest.artifact).write_bytes(artifact)
        (staging / MANIFEST_FILE).write_text(manifest.model_dump_json(indent=2))
        os.rename(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return target


def version_name(prefix: str, created: datetime, artifact: bytes) -> str:
    """Sortable by day, unique by content: `xgb-2026.11.23-1a2b3c4d`."""
    return f"{prefix}-{created:%Y.%m.%d}-{sha256(artifact)[:8]}"
