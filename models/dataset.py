"""Labelled rows from a cohort: one per patient and check time, as the stream would see it.

Each row holds the features of every event observed up to the check time, computed by
`features/offline.py` (proven equal to the reference, which is proven equal to Redis), so
training and serving see the same numbers.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from features.news2 import news2
from features.offline import feature_rows
from features.samples import to_us
from features.windows import HOUR_US
from models.eventlog import Outcome, read_outcomes, read_vitals
from models.vitals_model import design_matrix


@dataclass(frozen=True)
class Dataset:
    x: np.ndarray
    """float64 [rows, MODEL_FEATURES]."""
    y: np.ndarray
    """1 where the patient's deterioration event falls within `horizon_h` after the check."""
    patient: np.ndarray
    """Row -> index into `outcomes`."""
    check_us: np.ndarray
    as_of_us: np.ndarray
    """Time of the patient's latest vitals observation at the check."""
    news2_total: np.ndarray
    outcomes: list[Outcome]
    horizon_h: float
    every_h: float

    def take(self, rows: np.ndarray) -> Dataset:
        return Dataset(
            x=self.x[rows],
            y=self.y[rows],
            patient=self.patient[rows],
            check_us=self.check_us[rows],
            as_of_us=self.as_of_us[rows],
            news2_total=self.news2_total[rows],
            outcomes=self.outcomes,
            horizon_h=self.horizon_h,
            every_h=self.every_h,
        )

    def of_patients(self, patients: np.ndarray) -> Dataset:
        return self.take(np.flatnonzero(np.isin(self.patient, patients)))

    @property
    def patient_days(self) -> float:
        """Observed time of the rows' patients (admission to the end of observation)."""
        seen = np.unique(self.patient)
        seconds = sum(
            (self.outcomes[i].discharged_at - self.outcomes[i].admitted_at).total_seconds()
            for i in seen
        )
        return seconds / 86_400


def build(
    cohort: Path, every_h: float = 1.0, horizon_h: float = 12.0, lookback_h: float = 4.0
) -> Dataset:
    """Rows every `every_h` from admission until the end of observation (the event, for a
    patient who deteriorates: nothing after it is a prediction)."""
    outcomes = read_outcomes(cohort)
    logs = read_vitals(cohort)
    step = int(every_h * HOUR_US)
    horizon = int(horizon_h * HOUR_US)
    parts: list[tuple[np.ndarray, ...]] = []
    for index, outcome in enumerate(outcomes):
        log = logs.get(outcome.patient_id)
        if not log:
            continue
        start = to_us(outcome.admitted_at)
        end = to_us(outcome.event_at or outcome.discharged_at)
        checks = np.arange(start + step, end, step, dtype=np.int64)
        if len(checks) == 0:
            continue
        rows = feature_rows(log, checks, lookback_h)
        seen = rows.as_of_us >= 0
        if not seen.any():
            continue
        news = [rows.news2[i] for i in np.flatnonzero(seen)]
        x = design_matrix(rows.values[seen], news)
        checks = checks[seen]
        if outcome.event_at is None:
            y = np.zeros(len(checks), dtype=np.int8)
        else:
            event = to_us(outcome.event_at)
            y = ((checks < event) & (event <= checks + horizon)).astype(np.int8)
        totals = np.array([news2(n).total for n in news], dtype=np.int16)  # type: ignore[arg-type]
        patient = np.full(len(checks), index, dtype=np.int32)
        parts.append((x, y, patient, checks, rows.as_of_us[seen], totals))
    if not parts:
        raise ValueError(f"{cohort}: no patient has a vitals event inside its stay")
    x, y, patient, check_us, as_of_us, totals = (
        np.concatenate(p) for p in zip(*parts, strict=True)
    )
    return Dataset(x, y, patient, check_us, as_of_us, totals, outcomes, horizon_h, every_h)
