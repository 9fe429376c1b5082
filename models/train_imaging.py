"""`vigil train imaging`: the chest-film CNN from a cohort's images and their labels.

Patients (never films) are split in two, stratified by whether a patient has any film with
a finding: a patient's films look alike (same anatomy, same disease), so a film-level split
would score memory, not reading. The held-out patients' AUROC per label goes into the
manifest. The images go through `image_model.read_image` and `window` exactly as the
worker reads them, from the DICOM files the events point at.

Deterministic for a seed on the CPU (the default): seeded initialisation, data order and
augmentation, deterministic kernels and a fixed thread count give the same artifact bytes.
A GPU trains faster but not bit for bit reproducibly, so it is opt-in.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import torch
from sklearn.metrics import average_precision_score, roc_auc_score
from torch import nn

from models.eventlog import read_info
from models.image_model import (
    IMAGE_INPUTS,
    IMAGE_SIZE,
    LABELS,
    WINDOW,
    ChestNet,
    ImageModel,
    export,
    read_image,
    resolve_device,
    window,
)
from models.imaging_data import INFO_FILE, LABELS_FILE, STUDIES_FILE
from models.manifest import ModelManifest, install, sha256, version_name
from streams.events import ImagingStudy

EPOCHS = 30
BATCH_SIZE = 16
LEARNING_RATE = 3e-3
WEIGHT_DECAY = 1e-4
HELD_OUT = 0.25
THREADS = 1
"""Fixed, because the order of a parallel float reduction, and with it the last bits of
the weights, can depend on the number of threads. One, because this network's operations
are too small to gain from more: on the 2-core development machine with another process
busy, two threads trained at 13 images/s (every operation waits at a barrier for the
descheduled thread) and one at 200-360."""
SHIFT_PX = 8
"""Random translation in training: positioning differs between films."""
MAX_IMAGE_BYTES = 64 << 20


@dataclass(frozen=True)
class Images:
    x: np.ndarray
    """(N, size, size) windowed images, 0..1."""
    y: np.ndarray
    """(N, labels) 0/1."""
    patient: np.ndarray


@dataclass(frozen=True)
class Trained:
    manifest: ModelManifest
    artifact: bytes
    network: ChestNet
    """The network the artifact was exported from, in eval mode."""


def load_images(directory: Path) -> Images:
    """Every film of the cohort with its labels, read as the worker reads them."""
    labels = {}
    with (directory / LABELS_FILE).open("rb") as f:
        for line in f:
            if line.strip():
                row = orjson.loads(line)
                labels[row["study_uid"]] = [float(row[name]) for name in LABELS]
    xs, ys, patients = [], [], []
    with (directory / STUDIES_FILE).open("rb") as f:
        for line in f:
            if not line.strip():
                continue
            event = orjson.loads(line)
            xs.append(window(read_image(event["image_uri"], MAX_IMAGE_BYTES), IMAGE_SIZE))
            ys.append(labels[event["study_uid"]])
            patients.append(event["patient_id"])
    if not xs:
        raise ValueError(f"no images in {directory / STUDIES_FILE}")
    return Images(
        np.stack(xs).astype(np.float32), np.array(ys, dtype=np.float32), np.array(patients)
    )


def split_patients(data: Images, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Film indices of the training and held-out patients; each gets its share of the
    patients with a finding."""
    rng = np.random.default_rng(seed)
    patients = np.unique(data.patient)
    positive = {p for p, y in zip(data.patient, data.y, strict=True) if y.any()}
    held: list[str] = []
    for group in (
        [p for p in patients if p in positive],
        [p for p in patients if p not in positive],
    ):
        shuffled = rng.permutation(np.array(group, dtype=patients.dtype))
        held.extend(shuffled[: round(len(shuffled) * HELD_OUT)])
    is_held = np.isin(data.patient, held)
    return np.flatnonzero(~is_held), np.flatnonzero(is_held)


@contextmanager
def _reproducible(seed: int, device: torch.device) -> Iterator[None]:
    """Seeded, deterministic torch for the duration, and the caller's settings back
    afterwards (a test or a worker in the same process keeps its own)."""
    deterministic = torch.are_deterministic_algorithms_enabled()
    warn_only = torch.is_deterministic_algorithms_warn_only_enabled()
    threads = torch.get_num_threads()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        torch.use_deterministic_algorithms(True, warn_only=device.type == "cuda")
        torch.set_num_threads(THREADS)
        try:
            yield
        finally:
            torch.use_deterministic_algorithms(deterministic, warn_only=warn_only)
            torch.set_num_threads(threads)


def _augment(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Shifts and exposure changes: the variation between films that says nothing about
    the findings."""
    n, size, _ = x.shape
    padded = nn.functional.pad(x.unsqueeze(1), [SHIFT_PX] * 4, mode="replicate").squeeze(1)
    offsets = torch.randint(0, 2 * SHIFT_PX + 1, (n, 2), generator=generator).tolist()
    shifted = torch.stack(
        [padded[i, r : r + size, c : c + size] for i, (r, c) in enumerate(offsets)]
    )
    gain = 1 + 0.1 * torch.randn(n, 1, 1, generator=generator)
    bias = 0.1 * torch.randn(n, 1, 1, generator=generator)
    return shifted * gain + bias


def fit(x: np.ndarray, y: np.ndarray, seed: int, epochs: int, device: torch.device) -> ChestNet:
    """Train on standardised images; class-weighted so that rare findings count."""
    generator = torch.Generator().manual_seed(seed)
    net = ChestNet(len(LABELS)).to(device)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    positives = yt.sum(0)
    pos_weight = ((len(yt) - positives) / positives.clamp(min=1)).clamp(1, 10)
    loss_fn = nn.BCEWithLogitsLoss(pos_weight=pos_weight.to(device))
    optimizer = torch.optim.AdamW(net.parameters(), LEARNING_RATE, weight_decay=WEIGHT_DECAY)
    steps = -(-len(xt) // BATCH_SIZE)
    schedule = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, LEARNING_RATE, total_steps=max(1, epochs * steps)
    )
    net.train()
    for _ in range(epochs):
        order = torch.randperm(len(xt), generator=generator)
        for start in range(0, len(xt), BATCH_SIZE):
            index = order[start : start + BATCH_SIZE]
            if len(index) < 2:  # batch norm needs two samples
                continue
            batch = _augment(xt[index], generator).to(device)
            loss = loss_fn(net.logits(batch), yt[index].to(device))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
    return net.eval()


def _predict(net: ChestNet, x: np.ndarray, device: torch.device) -> np.ndarray:
    with torch.inference_mode():
        parts = [
            net(torch.from_numpy(x[i : i + 128]).to(device)).cpu().numpy()
            for i in range(0, len(x), 128)
        ]
    return np.concatenate(parts) if parts else np.zeros((0, len(LABELS)), dtype=np.float32)


def _metrics(y: np.ndarray, p: np.ndarray) -> dict[str, Any]:
    auroc: dict[str, float | None] = {}
    average_precision: dict[str, float | None] = {}
    for i, label in enumerate(LABELS):
        both = 0 < y[:, i].sum() < len(y)
        auroc[label] = float(roc_auc_score(y[:, i], p[:, i])) if both else None
        average_precision[label] = (
            float(average_precision_score(y[:, i], p[:, i])) if both else None
        )
    return {"auroc": auroc, "average_precision": average_precision}


def train(directory: Path, seed: int = 0, epochs: int = EPOCHS, device: str = "cpu") -> Trained:
    cohort = read_info(directory)
    imaging = orjson.loads((directory / INFO_FILE).read_bytes())
    if imaging["spec"] != cohort.get("spec"):
        raise ValueError(f"{directory}: the images were made from another cohort spec")
    data = load_images(directory)
    train_i, held_i = split_patients(data, seed)
    mean = float(data.x[train_i].mean())
    std = float(data.x[train_i].std()) or 1.0
    x = (data.x - mean) / std
    where = resolve_device(device)
    with _reproducible(seed, where):
        net = fit(x[train_i], data.y[train_i], seed, epochs, where)
        held_p = _predict(net, x[held_i], where)
        artifact = export(net.cpu(), IMAGE_SIZE)

    def counts(index: np.ndarray) -> dict[str, Any]:
        return {
            "patients": len(np.unique(data.patient[index])),
            "images": len(index),
            "positives": {label: int(data.y[index, i].sum()) for i, label in enumerate(LABELS)},
        }

    created = datetime.now(UTC)
    manifest = ModelManifest(
        name="imaging",
        version=version_name("cnn", created, artifact),
        created=created,
        kind="torch-export-cnn",
        artifact="model.pt2",
        artifact_sha256=sha256(artifact),
        feature_names=list(IMAGE_INPUTS),
        preprocessing={
            "size": IMAGE_SIZE,
            "windowing": {"low_percentile": WINDOW[0], "high_percentile": WINDOW[1]},
            "mean": mean,
            "std": std,
        },
        labels=list(LABELS),
        training={
            "seed": seed,
            "epochs": epochs,
            "batch_size": BATCH_SIZE,
            "learning_rate": LEARNING_RATE,
            "weight_decay": WEIGHT_DECAY,
            "device": where.type,
            "splits": {"train": counts(train_i), "held_out": counts(held_i)},
            "cohort": cohort,
            "imaging": imaging,
        },
        metrics={"split": "held_out", **_metrics(data.y[held_i], held_p)},
    )
    return Trained(manifest, artifact, net)


def train_and_install(directory: Path, model_dir: Path, seed: int = 0) -> tuple[Path, Trained]:
    trained = train(directory, seed)
    return install(model_dir, trained.manifest, trained.artifact), trained


def study_scores(
    model: ImageModel, directory: Path, batch_size: int = 64
) -> list[tuple[str, datetime, float]]:
    """(patient_id, acquired_at, imaging score) of every study of a cohort, read and scored
    as the worker does: what evaluation and the fusion model join to the vitals rows."""
    with (directory / STUDIES_FILE).open("rb") as f:
        studies = [ImagingStudy.model_validate_json(line) for line in f if line.strip()]
    out: list[tuple[str, datetime, float]] = []
    for lo in range(0, len(studies), batch_size):
        batch = studies[lo : lo + batch_size]
        pixels = np.stack(
            [model.preprocess(read_image(s.image_uri, MAX_IMAGE_BYTES)) for s in batch]
        )
        out.extend(
            (s.patient_id, s.acquired_at, model.score(p))
            for s, p in zip(batch, model.predict(pixels), strict=True)
        )
    return out
