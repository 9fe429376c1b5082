"""How a score would behave on a ward: alerts, alert burden, sensitivity, PPV, lead time.

The alert rule (the same for every score, model or NEWS2): at each check, an alert fires
when the score is at or above the threshold and the patient had no alert in the previous
`REARM_H` hours. It stands in for the live policy's episodes and suppression, which act on
every event rather than on hourly checks.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sklearn.metrics import average_precision_score, brier_score_loss, roc_auc_score

from features.samples import to_us
from features.windows import HOUR_US
from models.dataset import Dataset

REARM_H = 12.0
PATIENT_DAYS_PER_ALERT = 35.0
"""The alert budget of the operating point: at most one alert per 35 patient-days."""


def alert_rows(data: Dataset, score: np.ndarray, threshold: float) -> np.ndarray:
    """Indices of the rows where an alert fires (rows of one patient are in time order)."""
    rearm = int(REARM_H * HOUR_US)
    fired = []
    candidates = np.flatnonzero(score >= threshold)
    last: dict[int, int] = {}
    for row in candidates:
        patient, at = int(data.patient[row]), int(data.check_us[row])
        previous = last.get(patient)
        if previous is None or at - previous >= rearm:
            fired.append(row)
            last[patient] = at
    return np.asarray(fired, dtype=np.int64)


def alerts_per_35_days(data: Dataset, score: np.ndarray, threshold: float) -> float:
    return len(alert_rows(data, score, threshold)) / data.patient_days * PATIENT_DAYS_PER_ALERT


def operating_threshold(data: Dataset, score: np.ndarray) -> float:
    """The lowest threshold whose alert burden, and that of every higher one tried, is at
    most one alert per 35 patient-days."""
    grid = np.unique(np.quantile(score, np.linspace(0.8, 1.0, 401)))
    chosen = float(grid[-1]) + 1e-9
    for t in grid[::-1]:
        if alerts_per_35_days(data, score, float(t)) > 1.0:
            break
        chosen = float(t)
    return chosen


@dataclass(frozen=True)
class EventMetrics:
    threshold: float
    alerts: int
    alerts_per_35_patient_days: float
    events: int
    detected: int
    sensitivity: float | None
    """Share of deterioration events preceded by an alert within the horizon."""
    ppv: float | None
    """Share of alerts followed by the patient's event within the horizon (None: no alert)."""
    lead_times_h: list[float]
    """Per detected event: hours from its first alert in the horizon to the event."""

    @property
    def median_lead_h(self) -> float | None:
        return float(np.median(self.lead_times_h)) if self.lead_times_h else None


def event_metrics(data: Dataset, score: np.ndarray, threshold: float) -> EventMetrics:
    fired = alert_rows(data, score, threshold)
    horizon = int(data.horizon_h * HOUR_US)
    first_alert: dict[int, int] = {}
    true_alerts = 0
    for row in fired:
        patient, at = int(data.patient[row]), int(data.check_us[row])
        event = data.outcomes[patient].event_at
        if event is not None and at < to_us(event) <= at + horizon:
            true_alerts += 1
            first_alert.setdefault(patient, at)
    with_event = [p for p in np.unique(data.patient) if data.outcomes[p].event_at is not None]
    leads = [
        (to_us(data.outcomes[p].event_at) - first_alert[p]) / HOUR_US  # type: ignore[arg-type]
        for p in with_event
        if p in first_alert
    ]
    return EventMetrics(
        threshold=threshold,
        alerts=len(fired),
        alerts_per_35_patient_days=len(fired) / data.patient_days * PATIENT_DAYS_PER_ALERT,
        events=len(with_event),
        detected=len(leads),
        sensitivity=len(leads) / len(with_event) if with_event else None,
        ppv=true_alerts / len(fired) if len(fired) else None,
        lead_times_h=sorted(leads),
    )


def discrimination(y: np.ndarray, score: np.ndarray) -> dict[str, float]:
    """Row-level AUROC and AUPRC (patient-checks with the event within the horizon)."""
    return {
        "auroc": float(roc_auc_score(y, score)),
        "auprc": float(average_precision_score(y, score)),
        "prevalence": float(y.mean()),
    }


def calibration(y: np.ndarray, probability: np.ndarray, bins: int = 10) -> dict[str, object]:
    """Brier score and observed vs predicted risk by decile of predicted risk."""
    edges = np.unique(np.quantile(probability, np.linspace(0, 1, bins + 1)))
    which = np.clip(np.searchsorted(edges, probability, side="right") - 1, 0, len(edges) - 2)
    predicted, observed = [], []
    for b in range(len(edges) - 1):
        mask = which == b
        if mask.any():
            predicted.append(float(probability[mask].mean()))
            observed.append(float(y[mask].mean()))
    return {
        "brier": float(brier_score_loss(y, probability)),
        "predicted": predicted,
        "observed": observed,
    }


def auroc_gain_interval(
    data: Dataset, model: np.ndarray, baseline: np.ndarray, resamples: int = 200, seed: int = 0
) -> tuple[float, float]:
    """95 % interval of AUROC(model) - AUROC(baseline) by resampling patients (not rows:
    a patient's hourly checks are not independent)."""
    rng = np.random.default_rng(seed)
    order = np.argsort(data.patient, kind="stable")
    patients, starts = np.unique(data.patient[order], return_index=True)
    rows = np.split(order, starts[1:])
    gains = []
    for _ in range(resamples):
        pick = np.concatenate([rows[i] for i in rng.integers(0, len(patients), len(patients))])
        if data.y[pick].min() == data.y[pick].max():
            continue
        gains.append(
            roc_auc_score(data.y[pick], model[pick]) - roc_auc_score(data.y[pick], baseline[pick])
        )
    low, high = np.percentile(gains, [2.5, 97.5])
    return float(low), float(high)
