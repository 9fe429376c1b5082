"""`vigil train notes`: the notes head (an MLP over pooled sentence embeddings) from a
labelled cohort with `notes.jsonl` (models/notes_corpus.py).

A note's label is whether the patient's event falls within `horizon_h` after it was
written, the vitals model's label. Patients (never notes) are split three ways, stratified
by outcome: `train` fits the head, `valid` fits Platt scaling, and
`held_out` gives the manifest's metrics, beside those of a bag-of-keywords logistic
regression on the same split, the baseline the encoder has to beat to be worth its cost.
Deterministic for a seed: same cohort and seed, same bytes (one thread, deterministic
algorithms, seeded initialisation and dropout; sentences embedded in sorted order).
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression
from torch import nn

from models import clinical_metrics
from models.eventlog import OUTCOMES_FILE, Outcome, read_info, read_outcomes
from models.manifest import ModelManifest, install, sha256, version_name
from models.notes_corpus import NOTES_FILE
from models.text_model import (
    DIM,
    ENCODER,
    ENCODER_PACKAGE,
    NOTES_INPUTS,
    POOLING,
    SENTENCE_BREAK,
    EncodedNote,
    NotesModel,
    SentenceEncoder,
    head_bytes,
    head_logits,
    head_network,
    platt,
    shared_encoder,
)
from streams.events import ClinicalNote

SPLIT = (0.6, 0.2, 0.2)
PARAMS: dict[str, Any] = {
    "dropout": 0.2,
    "sentence_keep": 0.4,
    "lr": 1e-3,
    "weight_decay": 0.1,
    "steps": 300,
}
"""Full-batch Adam with an L2 penalty for a fixed number of steps, each step on random
subsets of every note's sentences (`sentence_keep`). Why subsets: a 400-patient cohort has
a few dozen positive notes and the head memorises them; subsets multiply the examples
without re-encoding, teach the head short notes and notes missing a sentence (which is
what the attribution scores), and measured +0.01 to +0.05 held-out AUROC and a wider
margin between a sick note and its negation. Why no early stopping: the validation split's
few dozen positives make its loss too noisy to stop on (it stopped within 10-40 steps,
short of the best held-out AUROC). Why full batch: exact reproducibility, and it fits."""
KEYWORDS = (
    "fever",
    "febrile",
    "rigors",
    "temp",
    "breath",
    "oxygen",
    "sats",
    "hypotensive",
    "bolus",
    "confus",
    "drowsy",
    "urine",
    "oedema",
    "crackles",
    "melaena",
    "bleed",
    "haematemesis",
    "chest pain",
    "palpitations",
    "sepsis",
    "tachycardic",
    "news2",
    "outreach",
    "critical care",
)
"""The words a keyword rule would look for; the baseline learns a weight for each."""


@dataclass(frozen=True)
class NotesData:
    notes: list[ClinicalNote]
    encoded: list[EncodedNote]
    x: np.ndarray
    """float64 [notes, DIM]: each note's pooled embedding."""
    y: np.ndarray
    """1 where the patient's event falls within `horizon_h` after `written_at`."""
    patient: np.ndarray
    """Note -> index into `outcomes`."""
    outcomes: list[Outcome]

    def take(self, rows: np.ndarray) -> NotesData:
        return NotesData(
            [self.notes[i] for i in rows],
            [self.encoded[i] for i in rows],
            self.x[rows],
            self.y[rows],
            self.patient[rows],
            self.outcomes,
        )

    def of_patients(self, patients: np.ndarray) -> NotesData:
        return self.take(np.flatnonzero(np.isin(self.patient, patients)))


@dataclass(frozen=True)
class Trained:
    manifest: ModelManifest
    artifact: bytes


def read_notes(cohort: Path) -> list[ClinicalNote]:
    """Validated exactly as the stream validates them; an invalid line is an error here (a
    cohort file is trusted input, not a feed)."""
    notes = []
    with (cohort / NOTES_FILE).open("rb") as f:
        for number, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                notes.append(ClinicalNote.model_validate_json(line))
            except ValueError as exc:
                raise ValueError(f"{cohort / NOTES_FILE}:{number}: {exc}") from None
    return notes


def labels(notes: list[ClinicalNote], outcomes: dict[str, Outcome], horizon_h: float) -> np.ndarray:
    horizon = timedelta(hours=horizon_h)
    y = np.zeros(len(notes), dtype=np.int8)
    for i, note in enumerate(notes):
        event = outcomes[note.patient_id].event_at
        y[i] = event is not None and note.written_at < event <= note.written_at + horizon
    return y


def build(cohort: Path, encoder: SentenceEncoder, horizon_h: float = 12.0) -> NotesData:
    """Every note of the cohort, embedded (each distinct sentence once), with its label."""
    outcomes = read_outcomes(cohort)
    index = {o.patient_id: i for i, o in enumerate(outcomes)}
    notes = [n for n in read_notes(cohort) if n.patient_id in index]
    if not notes:
        raise ValueError(f"{cohort}: no note of a patient in outcomes.jsonl")
    encoded = encoder.encode([n.text for n in notes])
    x = np.stack([e.pooled() for e in encoded])
    by_id = {o.patient_id: o for o in outcomes}
    patient = np.array([index[n.patient_id] for n in notes], dtype=np.int32)
    return NotesData(notes, encoded, x, labels(notes, by_id, horizon_h), patient, outcomes)


def split_patients(data: NotesData, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Patient indices for train, valid, held out; each gets its share of the patients with
    an event, so that no split is left without positives."""
    rng = np.random.default_rng(seed)
    patients = np.unique(data.patient)
    has_event = np.array([data.outcomes[p].event_at is not None for p in patients])
    parts: list[list[np.ndarray]] = [[], [], []]
    for group in (patients[has_event], patients[~has_event]):
        shuffled = rng.permutation(group)
        cuts = [round(len(shuffled) * SPLIT[0]), round(len(shuffled) * (SPLIT[0] + SPLIT[1]))]
        for part, chunk in zip(parts, np.split(shuffled, cuts), strict=True):
            part.append(chunk)
    train, valid, held_out = (np.sort(np.concatenate(p)) for p in parts)
    return train, valid, held_out


@contextmanager
def _reproducible(seed: int) -> Iterator[None]:
    """One thread and deterministic kernels while training, restored afterwards: the
    worker's scoring in the same process should keep its threads."""
    threads, deterministic = torch.get_num_threads(), torch.are_deterministic_algorithms_enabled()
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    torch.manual_seed(seed)
    try:
        yield
    finally:
        torch.set_num_threads(threads)
        torch.use_deterministic_algorithms(deterministic)


class _SentenceSubsets:
    """Pooled embeddings of random subsets of each note's sentences, from the stored chunk
    embeddings (a note that loses every sentence keeps them all)."""

    def __init__(self, notes: list[EncodedNote]) -> None:
        sizes = torch.as_tensor([len(e.sentences) for e in notes])
        first = torch.cumsum(sizes, 0) - sizes
        self.notes = len(notes)
        self.chunks = torch.as_tensor(np.concatenate([e.chunks for e in notes]))
        self.sentence_of = torch.cat(
            [torch.as_tensor(e.sentence_of) + int(f) for e, f in zip(notes, first, strict=True)]
        )
        self.note_of = torch.repeat_interleave(torch.arange(len(notes)), sizes)[self.sentence_of]
        self.full, _ = self._pool(torch.ones(len(self.chunks)))

    def _pool(self, kept: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        sums = torch.zeros(self.notes, DIM).index_add_(0, self.note_of, self.chunks * kept[:, None])
        counts = torch.zeros(self.notes).index_add_(0, self.note_of, kept)
        return sums / counts.clamp(min=1)[:, None], counts

    def sample(self, keep: float) -> torch.Tensor:
        sentences = int(self.sentence_of.max()) + 1
        kept = (torch.rand(sentences) < keep).float()[self.sentence_of]
        pooled, counts = self._pool(kept)
        return torch.where(counts[:, None] > 0, pooled, self.full)


def fit_head(train: NotesData, seed: int) -> nn.Sequential:
    """The head, trained on standardised embeddings (unit-length sentence means differ in
    small coordinates that plain gradient steps barely move), with the standardisation
    folded into its first layer afterwards. Positives are weighted up to balance the loss
    (a few percent of notes precede an event); Platt scaling undoes that in the
    probabilities."""
    mean, scale = train.x.mean(axis=0), train.x.std(axis=0) + 1e-6
    with _reproducible(seed):
        subsets = _SentenceSubsets(train.encoded)
        head = head_network(PARAMS["dropout"])
        optimiser = torch.optim.Adam(
            head.parameters(), lr=PARAMS["lr"], weight_decay=PARAMS["weight_decay"]
        )
        centre = torch.as_tensor(mean, dtype=torch.float32)
        spread = torch.as_tensor(scale, dtype=torch.float32)
        y = torch.as_tensor(train.y, dtype=torch.float32)
        positives = float(y.sum())
        loss_fn = nn.BCEWithLogitsLoss(pos_weight=torch.tensor((len(y) - positives) / positives))
        head.train()
        for _ in range(PARAMS["steps"]):
            x = (subsets.sample(PARAMS["sentence_keep"]) - centre) / spread
            optimiser.zero_grad()
            loss_fn(head(x)[:, 0], y).backward()
            optimiser.step()
    return _fold_standardisation(head.eval(), mean, scale)


def _fold_standardisation(
    head: nn.Sequential, mean: np.ndarray, scale: np.ndarray
) -> nn.Sequential:
    """W((x - m) / s) + b = (W / s) x + (b - (W / s) m): the artifact stays a plain MLP that
    reads the pooled embedding as the encoder gives it."""
    first = head[0]
    weight = first.weight.detach().double() / torch.as_tensor(scale)
    bias = first.bias.detach().double() - weight @ torch.as_tensor(mean)
    with torch.no_grad():
        first.weight.copy_(weight.float())
        first.bias.copy_(bias.float())
    return head


def _keyword_matrix(data: NotesData) -> np.ndarray:
    return np.array(
        [[word in n.text.lower() for word in KEYWORDS] for n in data.notes], dtype=np.float64
    )


def keyword_baseline(train: NotesData, held_out: NotesData) -> dict[str, float]:
    model = LogisticRegression(class_weight="balanced", max_iter=1000)
    model.fit(_keyword_matrix(train), train.y)
    score = model.predict_proba(_keyword_matrix(held_out))[:, 1]
    return clinical_metrics.discrimination(held_out.y, score)


def _facts(patients: np.ndarray, part: NotesData) -> dict[str, int]:
    return {"patients": len(patients), "notes": len(part.y), "positives": int(part.y.sum())}


@functools.lru_cache(maxsize=1)
def _embedded(cohort: Path, fingerprint: str, horizon_h: float, device: str) -> NotesData:
    """The cohort embedded by an encoder with no cache: an embedding's last bits depend on
    the batch it was padded in, so only a fresh, sorted pass gives the same bytes in every
    process. Kept for the next call (keyed by the files' hashes): embedding is minutes of
    CPU, and several seeds are often trained on one cohort."""
    return build(cohort, SentenceEncoder(shared_encoder(device).model, cache_size=0), horizon_h)


def train(cohort: Path, seed: int = 0, horizon_h: float = 12.0, device: str = "cpu") -> Trained:
    """On the CPU unless told otherwise: a GPU's embeddings differ in the last bits, and
    the same seed should give the same bytes on every machine."""
    notes_sha256 = hashlib.sha256((cohort / NOTES_FILE).read_bytes()).hexdigest()
    outcomes_sha256 = hashlib.sha256((cohort / OUTCOMES_FILE).read_bytes()).hexdigest()
    data = _embedded(cohort, notes_sha256 + outcomes_sha256, horizon_h, device)
    encoder = shared_encoder(device)
    patients = split_patients(data, seed)
    train_part, valid, held_out = (data.of_patients(p) for p in patients)
    for name, part in (("train", train_part), ("valid", valid), ("held_out", held_out)):
        if part.y.sum() == 0:
            raise ValueError(f"the {name} split has no positive notes: the cohort is too small")
    head = fit_head(train_part, seed)
    valid_logit = head_logits(head, valid.x)
    platt_fit = LogisticRegression(C=1e6).fit(valid_logit.reshape(-1, 1), valid.y)
    a, b = float(platt_fit.coef_[0][0]), float(platt_fit.intercept_[0])
    probability = platt(head_logits(head, held_out.x), a, b)
    baseline = keyword_baseline(train_part, held_out)
    metrics = {
        "split": "held_out",
        **clinical_metrics.discrimination(held_out.y, probability),
        "brier": clinical_metrics.calibration(held_out.y, probability)["brier"],
        "keyword_auroc": baseline["auroc"],
        "keyword_auprc": baseline["auprc"],
    }
    artifact = head_bytes(head)
    created = datetime.now(UTC)
    manifest = ModelManifest(
        name="notes",
        version=version_name("minilm-mlp", created, artifact),
        created=created,
        kind="torch-mlp",
        artifact="head.pt",
        artifact_sha256=sha256(artifact),
        feature_names=list(NOTES_INPUTS),
        preprocessing={
            "encoder": f"sentence-transformers/{ENCODER}",
            "encoder_package": ENCODER_PACKAGE,
            "max_tokens": encoder.max_tokens,
            "window_tokens": encoder.window,
            "pooling": POOLING,
            "sentence_break": SENTENCE_BREAK,
        },
        calibration={"a": a, "b": b, "prevalence": float(train_part.y.mean())},
        horizon_h=horizon_h,
        training={
            "seed": seed,
            "params": PARAMS,
            "cohort": read_info(cohort),
            "notes": {
                "file": NOTES_FILE,
                "sha256": notes_sha256,
                "notes": len(data.y),
                "positives": int(data.y.sum()),
            },
            "splits": {
                name: _facts(p, part)
                for name, p, part in zip(
                    ("train", "valid", "held_out"),
                    patients,
                    (train_part, valid, held_out),
                    strict=True,
                )
            },
        },
        metrics=metrics,
    )
    return Trained(manifest, artifact)


def train_and_install(cohort: Path, model_dir: Path, seed: int = 0) -> tuple[Path, Trained]:
    trained = train(cohort, seed)
    return install(model_dir, trained.manifest, trained.artifact), trained


def note_scores(
    model: NotesModel, cohort: Path, batch_size: int = 256
) -> list[tuple[str, datetime, float]]:
    """(patient_id, written_at, probability) of every note of a cohort, in file order: what
    evaluation and the fusion model join to the vitals rows."""
    notes = read_notes(cohort)
    out: list[tuple[str, datetime, float]] = []
    for lo in range(0, len(notes), batch_size):
        batch = notes[lo : lo + batch_size]
        probabilities = model.predict([n.text for n in batch])
        out.extend(
            (n.patient_id, n.written_at, float(p))
            for n, p in zip(batch, probabilities, strict=True)
        )
    return out
