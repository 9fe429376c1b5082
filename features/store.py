"""Redis feature store for vitals: one pipelined round trip per batch.

Each patient's events of a batch go to one EVALSHA of `lua/update_vitals.lua`, which
de-duplicates by `event_id`, inserts, trims to 24 h and keeps every window's running sums
server-side; all patients of a batch share one pipeline, and the features of all of them
come from the returned sums at once (`features/sums.py`). Key layout: KEYS.md.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import redis.asyncio as aioredis
from redis.asyncio.client import Pipeline
from redis.commands.core import AsyncScript
from redis.exceptions import NoScriptError

from features import sums
from features.news2 import News2Inputs
from features.samples import VitalsSample
from features.windows import FEATURE_NAMES, HOUR_US, VITALS


@dataclass(frozen=True, slots=True)
class PatientKeys:
    namespace: str
    patient_id: str

    def _key(self, kind: str) -> str:
        return f"{self.namespace}p:{{{self.patient_id}}}:{kind}"

    @property
    def samples(self) -> str:
        return self._key("samples:v2")

    @property
    def ids(self) -> str:
        return self._key("ids:v2")

    @property
    def meta(self) -> str:
        return self._key("meta:v2")

    @property
    def blocks(self) -> str:
        return self._key("blocks:v2")

    @property
    def risk(self) -> str:
        return self._key("risk")

    @property
    def history(self) -> str:
        return self._key("history")

    @property
    def alert(self) -> str:
        return self._key("alert")

    @property
    def modal(self) -> str:
        return self._key("modal")


@dataclass(frozen=True, slots=True)
class PatientFeatures:
    patient_id: str
    as_of_us: int
    accepted: int
    duplicates: int
    dropped: int
    samples: int
    values: np.ndarray
    """float64 rolling features in `FEATURE_NAMES` order, NaN where a window is empty."""
    news2_inputs: News2Inputs
    alert_state: bytes | None
    """The alert policy's state (JSON), read in the same round trip."""
    alert_outbox: bytes | None
    """Alerts decided but not yet confirmed published (JSON list), if a crash intervened."""
    notes: dict[str, Any] | None = None
    """Latest note score as stored by `set_modality`, read in the same round trip."""
    imaging: dict[str, Any] | None = None
    """Latest imaging score as stored by `set_modality`, read in the same round trip."""

    @property
    def features(self) -> dict[str, float | None]:
        """The rolling features by name, None where a window is empty."""
        return feature_dict(self.values)


def feature_dict(values: np.ndarray) -> dict[str, float | None]:
    """Rolling features (`FEATURE_NAMES` order, NaN where empty) by name, None for NaN."""
    return {n: None if v != v else v for n, v in zip(FEATURE_NAMES, values.tolist(), strict=True)}


@dataclass(frozen=True, slots=True)
class ScoreUpdate:
    """What one scoring writes for one patient, all in one pipeline."""

    patient_id: str
    fused: float
    scored_us: int
    risk_json: bytes
    features: np.ndarray
    """As `PatientFeatures.values`."""
    alert_state: bytes
    alert_outbox: bytes | None


def _float(raw: bytes | None) -> float | None:
    return None if raw is None else float(raw)


def parse_news2(raw: list[Any]) -> News2Inputs:
    rr, spo2, scale, o2, sbp, hr, avpu, temp = raw
    return News2Inputs(
        respiratory_rate=_float(rr),
        spo2=_float(spo2),
        spo2_scale=int(float(scale)) if scale is not None else 1,
        supplemental_o2=None if o2 is None else float(o2) == 1.0,
        systolic_bp=_float(sbp),
        heart_rate=_float(hr),
        consciousness=avpu.decode() if avpu is not None else None,
        temperature=_float(temp),
    )


class FeatureStore:
    """Vitals features, latest risk and risk history per patient, under one namespace."""

    def __init__(
        self,
        client: aioredis.Redis,
        namespace: str,
        ttl_h: float = 48.0,
        news2_lookback_h: float = 4.0,
        history_h: float = 24.0,
    ) -> None:
        self.client = client
        self.namespace = namespace
        self.ttl_ms = int(ttl_h * 3_600_000)
        self.lookback_us = int(news2_lookback_h * HOUR_US)
        self.history_us = int(history_h * HOUR_US)
        lua = Path(__file__).parent / "lua"
        self._update = client.register_script((lua / "update_vitals.lua").read_text())
        self._set_modality = client.register_script((lua / "set_modality.lua").read_text())
        self._save_score = client.register_script((lua / "save_score.lua").read_text())

    async def _pipelined(self, script: AsyncScript, fill: Callable[[Pipeline], None]) -> list[Any]:
        """One round trip of the commands `fill` queues, which call `script` by its SHA.

        redis-py's own script calls in a pipeline ask Redis whether the script is loaded
        (SCRIPT EXISTS) before every pipeline: a second round trip, which held back the
        request of each batch until its reply had come. Here the script is loaded only
        when Redis says it lacks it (a restart or SCRIPT FLUSH), and the pipeline runs
        again: every call of `script` failed then, and every script and command is
        idempotent."""
        for attempt in (1, 2):
            async with self.client.pipeline(transaction=False) as pipe:
                fill(pipe)
                try:
                    return await pipe.execute()
                except NoScriptError:
                    if attempt == 2:
                        raise
            await self.client.script_load(script.script)  # the same SHA: it is the text's
        raise AssertionError("unreachable")

    @property
    def patients_index(self) -> str:
        """Patients by latest fused risk: the one key outside a patient's hash slot."""
        return f"{self.namespace}patients"

    def keys(self, patient_id: str) -> PatientKeys:
        return PatientKeys(self.namespace, patient_id)

    async def apply_vitals(
        self, batch: dict[str, list[VitalsSample]]
    ) -> dict[str, PatientFeatures]:
        """Apply each patient's samples (in arrival order); one pipelined round trip."""
        sha = self._update.sha

        def fill(pipe: Pipeline) -> None:
            for patient_id, samples in batch.items():
                k = self.keys(patient_id)
                args: list[str | int | bytes] = [self.ttl_ms, self.lookback_us, len(samples)]
                for s in samples:
                    args += [s.event_id, s.observed_us, s.packed()]
                pipe.evalsha(sha, 6, k.samples, k.ids, k.meta, k.alert, k.modal, k.blocks, *args)

        replies = await self._pipelined(self._update, fill)
        if not replies:
            return {}
        # the features of every patient at once, from the window sums each call returned
        # (a script of another layout fails the reshape rather than being misread)
        values = sums.features(
            np.frombuffer(b"".join(r[1] for r in replies), dtype="<f8").reshape(
                len(replies), sums.SUMS_SIZE
            ),
            np.frombuffer(b"".join(r[2] for r in replies), dtype="<f8").reshape(
                len(replies), len(VITALS)
            ),
        )
        return {
            patient_id: _parse(patient_id, reply, row)
            for patient_id, reply, row in zip(batch, replies, values, strict=True)
        }

    async def read_features(self, patient_ids: list[str]) -> dict[str, PatientFeatures]:
        """Current features of patients that have vitals (the update script with no events);
        patients without any vitals yet are left out."""
        async with self.client.pipeline(transaction=False) as pipe:
            for pid in patient_ids:
                pipe.exists(self.keys(pid).meta)
            present = await pipe.execute()
        known = [pid for pid, n in zip(patient_ids, present, strict=True) if n]
        return await self.apply_vitals({pid: [] for pid in known}) if known else {}

    async def set_modality(self, scores: list[tuple[str, str, int, bytes]]) -> list[bool]:
        """(patient, modality, observed at us, ModalityScore JSON): keep each only if it is
        newer than the stored one, so a late or redelivered note never replaces a newer
        score. Returns whether each was stored."""
        sha = self._set_modality.sha

        def fill(pipe: Pipeline) -> None:
            for pid, modality, at_us, raw in scores:
                pipe.evalsha(sha, 1, self.keys(pid).modal, modality, at_us, raw, self.ttl_ms)

        return [bool(r) for r in await self._pipelined(self._set_modality, fill)]

    async def save_scores(self, updates: list[ScoreUpdate]) -> None:
        """Latest score, features, 24 h history and alert state (with any alerts still to
        publish) per patient: the alert decision is stored with the score it came from."""
        sha = self._save_score.sha

        def fill(pipe: Pipeline) -> None:
            for u in updates:
                k = self.keys(u.patient_id)
                args = [
                    self.ttl_ms,
                    u.risk_json,
                    np.asarray(u.features, dtype="<f8").tobytes(),
                    u.scored_us,
                    u.scored_us - self.history_us,
                    u.alert_state,
                ]
                if u.alert_outbox is not None:
                    args.append(u.alert_outbox)
                pipe.evalsha(sha, 3, k.risk, k.history, k.alert, *args)
            if updates:
                pipe.zadd(self.patients_index, {u.patient_id: u.fused for u in updates})

        await self._pipelined(self._save_score, fill)

    @property
    def alerts_index(self) -> str:
        return f"{self.namespace}alerts"

    async def alerts_published(self, alerts: list[tuple[str, int, bytes]]) -> None:
        """(patient, raised_at us, RiskAlert JSON) are on the topic: empty the outboxes and
        keep them for `GET /api/alerts` (last 24 h, at most 10,000)."""
        async with self.client.pipeline(transaction=False) as pipe:
            for patient_id, raised_us, alert_json in alerts:
                pipe.hdel(self.keys(patient_id).alert, "outbox")
                pipe.zadd(self.alerts_index, {alert_json: raised_us})
                pipe.zremrangebyscore(self.alerts_index, "-inf", raised_us - self.history_us)
            pipe.zremrangebyrank(self.alerts_index, 0, -10_001)
            await pipe.execute()

    async def recent_alerts(self, since_us: int) -> list[dict[str, Any]]:
        """Alerts raised at or after `since_us`, newest first."""
        raw = await self.client.zrevrangebyscore(self.alerts_index, "+inf", since_us)
        return [orjson.loads(item) for item in raw]

    async def patient(self, patient_id: str) -> dict[str, Any] | None:
        keys = self.keys(patient_id)
        async with self.client.pipeline(transaction=False) as pipe:
            pipe.hgetall(keys.risk)
            pipe.zrevrange(keys.history, 0, -1)
            snapshot, history = await pipe.execute()
        if not snapshot:
            return None
        packed = snapshot.get(b"values")
        return {
            "risk": orjson.loads(snapshot[b"risk"]),
            "features": (
                feature_dict(np.frombuffer(packed, dtype="<f8"))
                if packed is not None
                else orjson.loads(snapshot[b"features"])  # written before layout 2.1
            ),
            "history": [orjson.loads(item) for item in history],
        }

    async def latest_risks(self, limit: int = 1000) -> list[dict[str, Any]]:
        """Latest RiskScore per active patient, highest fused risk first.

        Patients whose keys expired are pruned from the index on the way.
        """
        ids = await self.client.zrevrange(self.patients_index, 0, limit - 1)
        if not ids:
            return []
        async with self.client.pipeline(transaction=False) as pipe:
            for raw in ids:
                pipe.hget(self.keys(raw.decode()).risk, "risk")
            risks = await pipe.execute()
        stale = [raw for raw, risk in zip(ids, risks, strict=True) if risk is None]
        if stale:
            await self.client.zrem(self.patients_index, *stale)
        return [orjson.loads(risk) for risk in risks if risk is not None]


def _parse(patient_id: str, reply: list[Any], values: np.ndarray) -> PatientFeatures:
    meta, _, _, news, (alert_state, alert_outbox), (notes, imaging) = reply
    as_of, accepted, duplicates, dropped, samples = meta
    return PatientFeatures(
        patient_id=patient_id,
        as_of_us=int(as_of),
        accepted=int(accepted),
        duplicates=int(duplicates),
        dropped=int(dropped),
        samples=int(samples),
        values=values,
        news2_inputs=parse_news2(news),
        alert_state=alert_state,
        alert_outbox=alert_outbox,
        notes=_modal(notes),
        imaging=_modal(imaging),
    )


def _modal(raw: bytes | None) -> dict[str, Any] | None:
    """`<observed_at us>|<JSON>` as written by lua/set_modality.lua."""
    return None if raw is None else orjson.loads(raw.split(b"|", 1)[1])
