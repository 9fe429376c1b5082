"""The imaging path of one consumed batch: validate → read the image → batched CNN →
Redis → re-score.

Images from every batch in flight meet in one `DynamicBatcher` (up to
`VIGIL_IMAGE_MAX_BATCH`, waiting at most `VIGIL_IMAGE_MAX_WAIT_MS`), behind a bounded
queue: a slow model slows consumption, it never grows memory. Reading and decoding run in
threads, the model in the batcher's thread, so the event loop keeps heartbeating Kafka.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import numpy as np
import orjson
from pydantic import ValidationError

from features.samples import to_us
from features.store import FeatureStore
from models.batcher import DynamicBatcher
from models.image_model import ImageError, ImageModel, read_image
from models.registry import ModelSlot
from streams.deadletters import RawRecord, Rejected, dead_letter, parse_record
from streams.events import ImagingStudy
from streams.metrics import Metrics
from streams.scoring import BatchResult, PatientScorer, Prepared
from streams.settings import Settings

log = logging.getLogger(__name__)


class ImagingPipeline:
    def __init__(
        self,
        store: FeatureStore,
        scorer: PatientScorer,
        models: ModelSlot[ImageModel],
        metrics: Metrics,
        settings: Settings,
    ) -> None:
        self.store = store
        self.scorer = scorer
        self.models = models
        self.metrics = metrics
        self.settings = settings
        self._batcher: DynamicBatcher[tuple[ImageModel, np.ndarray], np.ndarray] | None = None

    async def batcher(self) -> DynamicBatcher[tuple[ImageModel, np.ndarray], np.ndarray]:
        """Started on first use, inside the worker's event loop."""
        if self._batcher is None:
            s = self.settings
            self._batcher = DynamicBatcher(
                _predict, s.image_max_batch, s.image_max_wait_ms, s.image_max_queue
            )
            await self._batcher.start()
        return self._batcher

    async def _read(self, study: ImagingStudy, model: ImageModel) -> np.ndarray:
        image = await asyncio.to_thread(read_image, study.image_uri, self.settings.image_max_bytes)
        return await asyncio.to_thread(model.preprocess, image)

    async def _score(self, study: ImagingStudy, model: ImageModel) -> np.ndarray:
        """Probabilities per label; `Rejected` when the image or the model fails on it."""
        try:
            pixels = await self._read(study, model)
        except ImageError as exc:
            raise Rejected(f"image_{exc.reason}", str(exc)) from None
        try:
            return await (await self.batcher()).submit((model, pixels))
        except Exception as exc:  # the batcher retried it alone: this image breaks the model
            log.exception("image model failed on study %s", study.study_uid)
            raise Rejected("model_error", f"{type(exc).__name__}: {exc}"[:500]) from None

    async def prepare(self, records: list[RawRecord]) -> Prepared:
        result = BatchResult()
        studies: list[tuple[RawRecord, ImagingStudy]] = []
        for record in records:
            try:
                studies.append(
                    (record, parse_record(record, ImagingStudy, self.settings.max_message_bytes))
                )
            except (Rejected, ValidationError) as exc:
                result.dead.append(dead_letter(record, exc))
        if not studies:
            return Prepared(result, [])
        self.models.refresh()
        model = self.models.current
        if model is None:
            log.warning(
                "no imaging model in the model directory: %d studies not scored", len(studies)
            )
            return Prepared(result, [])
        outcomes = await asyncio.gather(
            *(self._score(study, model) for _, study in studies), return_exceptions=True
        )
        stored: list[tuple[str, str, int, bytes]] = []
        triggers: dict[str, str] = {}
        for (record, study), outcome in zip(studies, outcomes, strict=True):
            if isinstance(outcome, Rejected):
                result.dead.append(dead_letter(record, outcome))
                continue
            if isinstance(outcome, BaseException):
                raise outcome
            stored.append(
                (
                    study.patient_id,
                    "imaging",
                    to_us(study.acquired_at),
                    _modality(study, outcome, model),
                )
            )
            triggers[study.patient_id] = study.event_id
        return Prepared(result, (stored, triggers))

    async def apply(self, prepared: Prepared, topic: str) -> BatchResult:
        if not prepared.work:
            return prepared.result
        stored, triggers = prepared.work
        if stored:
            await self.store.set_modality(stored)
            features = await self.store.read_features(list(triggers))
            self.scorer.score(features, triggers, {}, topic, prepared.result)
        return prepared.result


def _predict(items: list[tuple[ImageModel, np.ndarray]]) -> list[np.ndarray]:
    """One forward pass per model in the batch (a hot swap can mix two for a moment)."""
    out: list[Any] = [None] * len(items)
    by_model: dict[int, list[int]] = {}
    for i, (model, _) in enumerate(items):
        by_model.setdefault(id(model), []).append(i)
    for rows in by_model.values():
        model = items[rows[0]][0]
        probabilities = model.predict(np.stack([items[i][1] for i in rows]))
        for i, p in zip(rows, probabilities, strict=True):
            out[i] = p
    return out


def _modality(study: ImagingStudy, probabilities: np.ndarray, model: ImageModel) -> bytes:
    findings = {
        label: round(float(p), 4) for label, p in zip(model.labels, probabilities, strict=True)
    }
    return orjson.dumps(
        {
            "score": model.score(probabilities),
            "version": model.version,
            "study_uid": study.study_uid,
            "acquired_at": study.acquired_at.isoformat(),
            "findings": findings,
            "contributors": [
                {"feature": f"image_{label}", "value": p, "contribution": p}
                for label, p in findings.items()
                if p >= 0.5
            ],
        }
    )
