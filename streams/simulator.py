"""A simulated ward: bedside monitors and manual observation sets, reproducible from a seed.

Each patient has a personal baseline; a share deteriorate from an onset time over several
hours along a physiologically plausible course (heart and breathing rates rise, systolic
pressure and SpO2 fall, fever or hypothermia, confusion late). Monitors send every
`interval_s` of simulated time with noise, artefacts and dropped values; a manual set
(temperature, consciousness, blood pressure) comes every 4 h of simulated time.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

MANUAL_EVERY_S = 4 * 3600


@dataclass
class Patient:
    patient_id: str
    unit: str
    hr: float
    rr: float
    spo2: float
    temp: float
    sbp: float
    dbp: float
    copd: bool
    onset_h: float | None
    ramp_h: float
    hypothermic: bool
    phase: float


def make_ward(n: int, deteriorating: float, hours: float, rng: random.Random) -> list[Patient]:
    ward = []
    for i in range(n):
        copd = rng.random() < 0.08
        sick = rng.random() < deteriorating
        ward.append(
            Patient(
                patient_id=f"p-{i:04d}",
                unit=f"ward-{1 + i % 3}",
                hr=rng.gauss(78, 9),
                rr=rng.gauss(16, 1.8),
                spo2=min(99.0, rng.gauss(90, 1.5) if copd else rng.gauss(97, 1.1)),
                temp=rng.gauss(36.8, 0.25),
                sbp=rng.gauss(126, 14),
                dbp=rng.gauss(76, 7),
                copd=copd,
                onset_h=rng.uniform(0.05, 0.6) * hours if sick else None,
                ramp_h=rng.uniform(3, 10),
                hypothermic=rng.random() < 0.2,
                phase=rng.uniform(0, 2 * math.pi),
            )
        )
    return ward


def severity(p: Patient, t_h: float) -> float:
    """0 before onset, rising smoothly to 1 after `ramp_h` hours."""
    if p.onset_h is None or t_h <= p.onset_h:
        return 0.0
    x = min(1.0, (t_h - p.onset_h) / p.ramp_h)
    return x * x * (3 - 2 * x)


def observe(
    p: Patient, t_h: float, at: datetime, seq: int, manual: bool, rng: random.Random
) -> dict[str, Any]:
    s = severity(p, t_h)
    circadian = math.sin(2 * math.pi * t_h / 24 + p.phase)
    hr = p.hr + 4 * circadian + 38 * s + rng.gauss(0, 2.5)
    rr = p.rr + 0.6 * circadian + 12 * s + rng.gauss(0, 1.0)
    spo2 = p.spo2 - 7 * s + rng.gauss(0, 0.8)
    sbp = p.sbp - 38 * s + rng.gauss(0, 4)
    dbp = p.dbp - 18 * s + rng.gauss(0, 3)
    temp = p.temp + 0.2 * circadian + (-1.9 if p.hypothermic else 2.3) * s + rng.gauss(0, 0.1)
    if rng.random() < 0.01:  # motion artefact on the pleth/ECG
        hr += rng.choice((-1, 1)) * rng.uniform(25, 60)
    on_o2 = s > 0.55 or (p.copd and rng.random() < 0.3)
    event: dict[str, Any] = {
        "event_id": f"{p.patient_id}-{seq}",
        "patient_id": p.patient_id,
        "observed_at": at.isoformat(),
        "unit": p.unit,
        "source": "manual" if manual else "monitor",
        "heart_rate": round(min(299.0, max(25.0, hr)), 1),
        "respiratory_rate": round(min(79.0, max(4.0, rr)), 1),
        "spo2": round(min(100.0, max(60.0, spo2)), 1),
        "spo2_scale": 2 if p.copd else 1,
        "supplemental_o2": on_o2,
    }
    if manual or rng.random() < 0.25:
        event["systolic_bp"] = round(min(250.0, max(50.0, sbp)), 0)
        event["diastolic_bp"] = round(min(150.0, max(25.0, dbp)), 0)
    if manual:
        event["temperature"] = round(min(44.0, max(30.0, temp)), 1)
        event["consciousness"] = rng.choice("CV") if s > 0.8 and rng.random() < 0.6 else "A"
    for name in ("heart_rate", "respiratory_rate", "spo2"):  # probe off, lead off
        if rng.random() < 0.04:
            del event[name]
    if not any(k in event for k in ("heart_rate", "respiratory_rate", "spo2", "systolic_bp")):
        event["heart_rate"] = round(hr, 1)
    return event


def ward_feed(
    patients: int,
    deteriorating: float,
    start: datetime,
    hours: float,
    interval_s: float,
    seed: int,
) -> Iterator[dict[str, Any]]:
    """Events of the whole ward in time order, `interval_s` of simulated time apart."""
    rng = random.Random(seed)
    ward = make_ward(patients, deteriorating, hours, rng)
    steps = int(hours * 3600 / interval_s)
    manual_every = max(1, round(MANUAL_EVERY_S / interval_s))
    for step in range(steps):
        at = start + timedelta(seconds=step * interval_s)
        t_h = step * interval_s / 3600
        for i, p in enumerate(ward):
            manual = (step + i) % manual_every == 0
            jitter = timedelta(seconds=rng.uniform(0, min(interval_s, 30)))
            yield observe(p, t_h, at + jitter, step, manual, rng)
