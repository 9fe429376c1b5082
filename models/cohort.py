"""A simulated, labelled ward cohort: each patient's hidden course and the vitals a ward
would have charted of it.

Why simulate: no ward data can be shipped or downloaded here, and only a simulation knows
the hidden truth (cause, onset, event time) that later work turns into nursing notes and
chest images. Why this much physiology: a model is only as honest as its hardest cases,
so the cohort holds what makes real wards hard. Chronic abnormal-but-stable patients
(COPD on SpO2 scale 2, AF, low blood pressure), benign excursions (post-operative fever,
pain, nebulisers, desaturation in sleep), syndromes with different signatures and speeds,
courses treated on the ward that recover, arrests with minutes of warning, beta-blocked
patients who cannot mount a tachycardia, old patients who mount no fever, monitors that
drop out and spike, observation sets that come late, are skipped, or carry an estimated
respiratory rate, and nurses who observe a patient hourly once the score is high (as the
NEWS2 escalation chart tells them to), so that how often a patient is observed carries
information, as it does in real records.

Reproducible: each patient draws from its own generators, keyed by (seed, patient index),
one for the hidden course and one for the observations, so a patient's data does not
depend on the other patients or on the order the streams are merged in.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from operator import itemgetter
from pathlib import Path
from typing import Any

import numpy as np
from scipy.signal import lfilter

from features.news2 import News2Inputs, news2
from models.eventlog import Outcome, isoformat, write_cohort

GENERATOR = "vigil-cohort-1"
SYNDROMES = ("sepsis", "respiratory_failure", "haemorrhage", "heart_failure")
SUDDEN = "arrhythmia"
"""An arrhythmic arrest: minutes of warning at most, never recovered from on the ward."""
BASELINES = ("typical", "copd", "chronic_tachycardia", "chronic_hypotension")
UNITS = ("ward-1", "ward-2", "ward-3", "ward-4")
ORGANS = (
    "fever",
    "hypothermia",
    "tachycardia",
    "tachypnoea",
    "hypoxia",
    "hypotension",
    "hypertension",
    "hypovolaemia",
    "fluid_overload",
    "consolidation",
    "confusion",
    "arrhythmia",
)

# Share of each cause among the deteriorating, hours from onset to full severity, and the
# chance that treatment on the ward turns the course before any event.
_CAUSES = (*SYNDROMES, SUDDEN)
_CAUSE_WEIGHTS = (0.34, 0.24, 0.14, 0.18, 0.10)
_COURSE_H = {
    "sepsis": (6.0, 36.0),
    "respiratory_failure": (4.0, 24.0),
    "haemorrhage": (1.0, 8.0),
    "heart_failure": (12.0, 48.0),
    SUDDEN: (0.05, 0.5),
}
_RECOVERS = {
    "sepsis": 0.3,
    "respiratory_failure": 0.3,
    "haemorrhage": 0.25,
    "heart_failure": 0.35,
    SUDDEN: 0.0,
}
_EVENT_KINDS = ("icu_transfer", "cardiac_arrest", "death")
_EVENT_KIND_WEIGHTS = (0.8, 0.1, 0.1)

# Slow physiological drift (sd, AR(1) with a 45 min time constant): what makes two
# readings an hour apart differ by more than the measurement noise.
_DRIFT_SD = {"hr": 4.0, "rr": 1.0, "spo2": 0.6, "temp": 0.12, "sbp": 6.0, "dbp": 2.5}
_DRIFT_TAU_S = 45 * 60.0

_COURSE, _OBSERVE = 0, 1


@dataclass(frozen=True)
class CohortSpec:
    patients: int = 400
    days: float = 3.0
    seed: int = 0
    monitored_share: float = 0.4
    """Share on a bedside monitor (every `monitor_interval_s`); the rest get manual sets."""
    monitor_interval_s: float = 60.0
    manual_every_h: float = 4.0
    deteriorating: float = 0.12
    """Share with a deterioration; some recover, some reach no event before the end."""
    start: datetime = datetime(2026, 1, 5, tzinfo=UTC)
    whole_ward: bool = False
    """Everyone on the ward from `start` to the end, as the live demo needs it: no
    admissions or discharges (observation still ends at a deterioration event)."""

    def __post_init__(self) -> None:
        if min(self.days, self.monitor_interval_s, self.manual_every_h) <= 0:
            raise ValueError("days, monitor_interval_s and manual_every_h must be positive")
        if self.start.utcoffset() is None:
            raise ValueError("start must carry a time zone")
        # Every producer writes UTC with `Z`; the ward's clock (nights, circadian) is UTC too.
        object.__setattr__(self, "start", self.start.astimezone(UTC))

    def info(self) -> dict[str, Any]:
        return {**asdict(self), "start": isoformat(self.start)}


@dataclass(frozen=True)
class HiddenState:
    """What is truly wrong at one moment; each derangement from 0 (none) to 1 (the worst
    this simulation produces). Notes and chest images are generated from it, so it names
    organs and treatments, not vital signs."""

    severity: float
    syndrome: str | None
    """The cause while it is active (severity above 0)."""
    episode: str | None
    """A benign excursion under way, e.g. `post_op_fever` or `nebuliser`."""
    oxygen_lpm: float
    fever: float
    hypothermia: float
    tachycardia: float
    tachypnoea: float
    hypoxia: float
    hypotension: float
    hypertension: float
    hypovolaemia: float
    fluid_overload: float
    consolidation: float
    confusion: float
    arrhythmia: float


@dataclass(frozen=True)
class Baseline:
    """A patient's own normal, which a good model learns not to alarm on."""

    kind: str
    hr: float
    rr: float
    spo2: float
    temp: float
    sbp: float
    dbp: float
    hr_sd: float
    """Beat-to-beat irregularity the monitor reports (high in AF)."""
    spo2_scale: int
    home_o2_lpm: float
    hr_gain: float
    """Below 1 on a beta-blocker: the tachycardia of sepsis or bleeding is blunted."""
    gain: float
    """How strongly this patient's vitals express a derangement (physiological reserve)."""
    fever_gain: float
    """Near 0 for the old and the immunosuppressed, who often mount no fever."""
    circadian_shift_h: float
    confusion_from: float
    """Level of confusion at which a nurse charts it (new confusion is easy to miss)."""


@dataclass(frozen=True)
class Episode:
    """A benign, self-limiting excursion: the false alarms every ward knows."""

    kind: str
    start_h: float
    duration_h: float
    effects: tuple[tuple[str, float], ...]
    """(organ, peak size) pairs."""

    def profile(self, t_h: np.ndarray) -> np.ndarray:
        u = (t_h - self.start_h) / self.duration_h
        return np.where((u > 0) & (u < 1), np.sin(np.pi * u) ** 2, 0.0)


@dataclass(frozen=True)
class Deterioration:
    """One syndrome's hidden course; times are hours since the cohort's start."""

    syndrome: str
    onset_h: float
    course_h: float
    """Onset to full severity, had nothing stopped it."""
    shape: float
    """Above 1: a slow start that gathers pace."""
    threshold: float
    """Severity at which the event happens (progressing courses)."""
    recovers: bool
    peak: float
    """1 for a progressing course; below every threshold for one that recovers."""
    plateau_h: float
    recovery_h: float
    wobble: float
    wobble_period_h: float
    wobble_phase: float
    hypothermic: bool
    """Sepsis: about one in five is cold, not hot."""
    pneumonia: bool
    """Sepsis or respiratory failure from a pneumonia: fever and consolidation."""
    pressor: float
    """Heart failure: how far blood pressure rises with the fluid overload."""
    o2_from: float
    """Hypoxia at which the nurse starts oxygen."""

    def severity(self, t_h: np.ndarray) -> np.ndarray:
        x = np.maximum(t_h - self.onset_h, 0.0) / self.course_h
        s = np.minimum(x**self.shape, self.peak)
        if self.recovers:
            top_h = self.course_h * self.peak ** (1 / self.shape) + self.plateau_h
            falling = (t_h - self.onset_h - top_h) / self.recovery_h
            s = np.where(falling > 0, self.peak * np.clip(1 - falling, 0.0, 1.0), s)
        wobble = 1 + self.wobble * np.sin(
            2 * np.pi * t_h / self.wobble_period_h + self.wobble_phase
        )
        return np.clip(s * wobble, 0.0, 1.0)

    def recovered_h(self) -> float:
        return (
            self.onset_h
            + self.course_h * self.peak ** (1 / self.shape)
            + self.plateau_h
            + self.recovery_h
        )

    def event_h(self) -> float | None:
        """First minute the severity reaches the threshold."""
        if self.recovers:
            return None
        t = self.onset_h + np.arange(0.0, self.course_h + self.wobble_period_h + 1, 1 / 60)
        hit = np.flatnonzero(self.severity(t) >= self.threshold)
        return float(t[hit[0]]) if hit.size else None

    def organs(self, s: np.ndarray) -> dict[str, np.ndarray]:
        """Each syndrome's signature: which organs derange, and how early in the course."""
        if self.syndrome == "sepsis":
            return {
                "fever": np.zeros_like(s) if self.hypothermic else np.minimum(1.0, 1.4 * s),
                "hypothermia": np.minimum(1.0, 1.2 * s) if self.hypothermic else np.zeros_like(s),
                "tachycardia": 0.8 * s**0.7,
                "tachypnoea": 0.6 * s**0.8,
                "hypoxia": (0.45 if self.pneumonia else 0.25) * s,
                "hypotension": 0.8 * _ramp(s, 0.35, 1.0),
                "confusion": _ramp(s, 0.55, 1.0),
                "consolidation": s if self.pneumonia else np.zeros_like(s),
            }
        if self.syndrome == "respiratory_failure":
            return {
                "tachypnoea": s**0.7,
                "hypoxia": s,
                "tachycardia": 0.5 * s,
                "fever": 0.5 * s if self.pneumonia else np.zeros_like(s),
                "consolidation": s if self.pneumonia else 0.3 * s,
                "confusion": 0.8 * _ramp(s, 0.7, 1.0),
                "hypotension": 0.15 * _ramp(s, 0.6, 1.0),
            }
        if self.syndrome == "haemorrhage":
            return {
                "hypovolaemia": s,
                "tachycardia": s**0.6,
                "hypotension": _ramp(s, 0.45, 1.0) ** 1.3,
                "tachypnoea": 0.35 * s,
                "hypoxia": 0.1 * s,
                "confusion": 0.7 * _ramp(s, 0.7, 1.0),
                "hypothermia": 0.15 * s,
            }
        if self.syndrome == "heart_failure":
            return {
                "fluid_overload": s,
                "tachypnoea": 0.7 * s,
                "hypoxia": 0.7 * s,
                "tachycardia": 0.5 * s,
                "hypertension": self.pressor * s,
                "confusion": 0.4 * _ramp(s, 0.8, 1.0),
            }
        return {
            "arrhythmia": _ramp(s, 0.5, 1.0),
            "tachycardia": 0.3 * _ramp(s, 0.0, 0.5),
            "hypotension": _ramp(s, 0.6, 1.0),
            "confusion": _ramp(s, 0.8, 1.0),
        }


@dataclass(frozen=True)
class PatientCourse:
    """One patient's hidden truth; the vitals are observations of it."""

    index: int
    patient_id: str
    unit: str
    monitored: bool
    origin: datetime
    """The cohort's start; every hour inside is counted from it."""
    admitted_at: datetime
    """Start of observation (the cohort's start for a patient already on the ward)."""
    discharged_at: datetime
    """End of observation: discharge, the end of the cohort, or the event."""
    baseline: Baseline
    deterioration: Deterioration | None
    episodes: tuple[Episode, ...]
    event_at: datetime | None
    event_kind: str | None

    @property
    def syndrome(self) -> str | None:
        return self.deterioration.syndrome if self.deterioration else None

    @property
    def onset_at(self) -> datetime | None:
        if self.deterioration is None:
            return None
        return self.origin + timedelta(hours=self.deterioration.onset_h)

    def _hours(self, t: datetime) -> float:
        return (t - self.origin).total_seconds() / 3600

    def state_at(self, t: datetime) -> HiddenState:
        p = self.physiology(np.array([self._hours(t)]))
        severity = float(p["severity"][0])
        return HiddenState(
            severity=severity,
            syndrome=self.syndrome if severity > 0 else None,
            episode=self._episode_at(self._hours(t)),
            oxygen_lpm=float(p["oxygen_lpm"][0]),
            **{organ: float(p[organ][0]) for organ in ORGANS},
        )

    def _episode_at(self, t_h: float) -> str | None:
        sizes = [(float(e.profile(np.array([t_h]))[0]), e.kind) for e in self.episodes]
        size, kind = max(sizes, default=(0.0, None))
        return kind if size > 0.1 else None

    def physiology(self, t_h: np.ndarray) -> dict[str, np.ndarray]:
        """Severity, organs, oxygen and the true vitals (before drift, noise and
        artefacts) at each time, hours since the cohort's start."""
        zero = np.zeros_like(t_h)
        d = self.deterioration
        severity = d.severity(t_h) if d else zero
        syndrome = d.organs(severity) if d else {}
        organs = {name: syndrome.get(name, zero) for name in ORGANS}
        for episode in self.episodes:
            shape = episode.profile(t_h)
            for name, size in episode.effects:
                organs[name] = organs[name] + size * shape
        organs = {name: np.clip(v, 0.0, 1.0) for name, v in organs.items()}

        b = self.baseline
        treated = syndrome.get("hypoxia", zero)
        extra_o2 = (
            np.where(treated >= d.o2_from, 2 + 13 * _ramp(treated, d.o2_from, 1.0), 0.0)
            if d
            else zero
        )
        clock_h = _clock_h(self.origin) + t_h
        circadian = np.cos(2 * np.pi * (clock_h - 16 - b.circadian_shift_h) / 24)
        g = b.gain
        hr = (
            b.hr
            + 5 * circadian
            + b.hr_gain * g * 50 * organs["tachycardia"]
            + 100 * organs["arrhythmia"]
        )
        rr = b.rr + 0.8 * circadian + g * 18 * organs["tachypnoea"]
        correction = 0.65 * np.minimum(1.0, extra_o2 / 8)
        spo2 = b.spo2 - g * 18 * organs["hypoxia"] * (1 - correction)
        temp = (
            b.temp
            + 0.25 * circadian
            + b.fever_gain * 2.3 * organs["fever"]
            - 2.2 * organs["hypothermia"]
        )
        sbp = b.sbp + 7 * circadian + g * (30 * organs["hypertension"] - 55 * organs["hypotension"])
        dbp = (
            b.dbp
            + 4 * circadian
            + g * (12 * organs["hypertension"] - 30 * organs["hypotension"])
            + 10 * organs["hypovolaemia"] * (1 - organs["hypotension"])
        )
        sbp = np.clip(sbp, 40.0, 250.0)
        return {
            "severity": severity,
            "oxygen_lpm": b.home_o2_lpm + extra_o2,
            **organs,
            "hr": np.clip(hr, 25.0, 250.0),
            "rr": np.clip(rr, 4.0, 60.0),
            "spo2": np.clip(spo2, 60.0, 100.0),
            "temp": np.clip(temp, 32.0, 42.0),
            "sbp": sbp,
            "dbp": np.clip(dbp, 20.0, sbp - 8),
        }

    def outcome(self) -> Outcome:
        return Outcome(
            patient_id=self.patient_id,
            unit=self.unit,
            admitted_at=self.admitted_at,
            discharged_at=self.discharged_at,
            event_at=self.event_at,
            event_kind=self.event_kind,
            syndrome=self.syndrome,
            baseline=self.baseline.kind,
        )


def _ramp(s: np.ndarray, lo: float, hi: float) -> np.ndarray:
    return np.clip((s - lo) / (hi - lo), 0.0, 1.0)


def _clock_h(t: datetime) -> float:
    return t.hour + t.minute / 60 + t.second / 3600


def _rng(seed: int, index: int, stream: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(index, stream)))


def _baseline(rng: np.random.Generator) -> Baseline:
    u = rng.random()
    kind = (
        "copd"
        if u < 0.07
        else "chronic_tachycardia"
        if u < 0.13
        else "chronic_hypotension"
        if u < 0.17
        else "typical"
    )
    beta_blocked = rng.random() < 0.2
    hr = float(np.clip(rng.normal(78, 10), 52, 100)) - (8.0 if beta_blocked else 0.0)
    rr = float(np.clip(rng.normal(16, 1.5), 12, 20))
    spo2 = float(np.clip(rng.normal(96.5, 1.2), 94, 99.5))
    temp = float(np.clip(rng.normal(36.7, 0.25), 36.1, 37.4))
    sbp = float(np.clip(rng.normal(130, 16), 100, 180))
    dbp = float(np.clip(rng.normal(75, 8), 55, min(100.0, sbp - 30)))
    hr_sd, scale, home_o2 = 2.0, 1, 0.0
    if kind == "copd":
        spo2, rr, scale = rng.uniform(88, 92), rng.uniform(20, 24), 2
        hr = float(np.clip(rng.normal(86, 8), 65, 100))
        home_o2 = float(rng.choice((1.0, 2.0))) if rng.random() < 0.6 else 0.0
    elif kind == "chronic_tachycardia":
        hr = rng.uniform(100, 120)
        hr_sd = rng.uniform(6, 10) if rng.random() < 0.6 else 3.0
    elif kind == "chronic_hypotension":
        sbp, dbp = rng.uniform(90, 105), rng.uniform(50, 62)
    return Baseline(
        kind=kind,
        hr=hr,
        rr=rr,
        spo2=spo2,
        temp=temp,
        sbp=sbp,
        dbp=dbp,
        hr_sd=hr_sd,
        spo2_scale=scale,
        home_o2_lpm=home_o2,
        hr_gain=0.5 if beta_blocked else 1.0,
        gain=float(rng.lognormal(0, 0.2)),
        fever_gain=0.3 if rng.random() < 0.15 else float(rng.lognormal(0, 0.15)),
        circadian_shift_h=float(rng.normal(0, 1.5)),
        confusion_from=rng.uniform(0.3, 0.55),
    )


def _deterioration(rng: np.random.Generator, admit_h: float, leave_h: float) -> Deterioration:
    cause = str(rng.choice(_CAUSES, p=_CAUSE_WEIGHTS))
    span = leave_h - admit_h
    recovers = rng.random() < _RECOVERS[cause]
    return Deterioration(
        syndrome=cause,
        onset_h=rng.uniform(admit_h + min(1.0, 0.1 * span), leave_h - min(2.0, 0.2 * span)),
        course_h=rng.uniform(*_COURSE_H[cause]),
        shape=rng.uniform(1.0, 2.0),
        threshold=rng.uniform(0.75, 0.95),
        recovers=recovers,
        peak=rng.uniform(0.3, 0.65) if recovers else 1.0,
        plateau_h=rng.uniform(1, 8),
        recovery_h=rng.uniform(8, 36),
        wobble=rng.uniform(0, 0.1),
        wobble_period_h=rng.uniform(2, 6),
        wobble_phase=rng.uniform(0, 2 * math.pi),
        hypothermic=rng.random() < 0.2,
        pneumonia=rng.random() < (0.4 if cause == "sepsis" else 0.65),
        pressor=rng.uniform(0, 1),
        o2_from=rng.uniform(0.12, 0.3),
    )


def _episodes(
    rng: np.random.Generator, baseline: Baseline, admit_h: float, leave_h: float, clock0_h: float
) -> tuple[Episode, ...]:
    days = (leave_h - admit_h) / 24
    found: list[Episode] = []
    if rng.random() < 0.35 * 0.4:  # a surgical patient (a third) with a fever after theatre
        size = rng.uniform(0.3, 0.6)
        effects = (("fever", size), ("tachycardia", 0.4 * size))
        start = admit_h + rng.uniform(2, 30)
        found.append(Episode("post_op_fever", start, rng.uniform(4, 12), effects))
    for _ in range(rng.poisson(0.4 * days)):
        effects = (
            ("tachycardia", rng.uniform(0.3, 0.6)),
            ("tachypnoea", 0.2),
            ("hypertension", 0.4),
        )
        found.append(
            Episode("pain", rng.uniform(admit_h, leave_h), rng.uniform(1 / 3, 1.5), effects)
        )
    nebs_per_day = 4.0 if baseline.kind == "copd" else 0.15
    for _ in range(rng.poisson(nebs_per_day * days)):
        effects = (("tachycardia", rng.uniform(0.2, 0.45)),)
        start = rng.uniform(admit_h, leave_h)
        found.append(Episode("nebuliser", start, rng.uniform(1 / 3, 2 / 3), effects))
    if rng.random() < (0.6 if baseline.kind == "copd" else 0.25):
        for night in np.arange((23 - clock0_h) % 24 - 24, leave_h, 24.0):
            for _ in range(rng.poisson(1.5)):
                effects = (("hypoxia", rng.uniform(0.25, 0.45)),)
                start = night + rng.uniform(0, 7)
                found.append(Episode("sleep_desaturation", start, rng.uniform(5, 30) / 60, effects))
    return tuple(found)


def _at(origin: datetime, hours: float) -> datetime:
    return origin + timedelta(seconds=round(hours * 3600))


def course(spec: CohortSpec, index: int) -> PatientCourse:
    """Patient `index`'s hidden course, drawn from its own generator only."""
    rng = _rng(spec.seed, index, _COURSE)
    end_h = spec.days * 24
    unit = UNITS[int(rng.integers(len(UNITS)))]
    monitored = bool(rng.random() < spec.monitored_share)
    baseline = _baseline(rng)
    if spec.whole_ward:
        admit_h, leave_h = 0.0, end_h
    else:
        stay_h = max(6.0, rng.lognormal(math.log(84), 0.6))
        present = rng.random() < 0.35
        admit_h = 0.0 if present else rng.uniform(0, min(24.0, end_h / 2))
        remaining_h = stay_h * rng.uniform(0.1, 1) if present else stay_h
        leave_h = min(end_h, admit_h + remaining_h)
    deterioration = None
    event_h = None
    event_kind = None
    if rng.random() < spec.deteriorating:
        deterioration = _deterioration(rng, admit_h, leave_h)
        if deterioration.recovers:
            settled_h = deterioration.recovered_h() + rng.uniform(6, 24)
            leave_h = min(end_h, max(leave_h, settled_h))
        else:
            leave_h = end_h  # nobody goes home while getting worse
            event_h = deterioration.event_h()
            if event_h is not None and event_h < leave_h:
                leave_h = event_h
                event_kind = (
                    "cardiac_arrest"
                    if deterioration.syndrome == SUDDEN
                    else str(rng.choice(_EVENT_KINDS, p=_EVENT_KIND_WEIGHTS))
                )
            else:
                event_h = None
    episodes = _episodes(rng, baseline, admit_h, leave_h, _clock_h(spec.start))
    return PatientCourse(
        index=index,
        patient_id=f"c-{index + 1:04d}",
        unit=unit,
        monitored=monitored,
        origin=spec.start,
        admitted_at=_at(spec.start, admit_h),
        discharged_at=_at(spec.start, leave_h),
        baseline=baseline,
        deterioration=deterioration,
        episodes=episodes,
        event_at=_at(spec.start, event_h) if event_h is not None else None,
        event_kind=event_kind,
    )


def courses(spec: CohortSpec) -> list[PatientCourse]:
    return [course(spec, i) for i in range(spec.patients)]


def outcomes(courses: Iterable[PatientCourse]) -> list[Outcome]:
    return [c.outcome() for c in courses]


def _drift(rng: np.random.Generator, n: int, step_s: float) -> dict[str, np.ndarray]:
    a = math.exp(-step_s / _DRIFT_TAU_S)
    drift = {}
    for name, sd in _DRIFT_SD.items():
        shocks = rng.normal(0, sd * math.sqrt(1 - a * a), n)
        drift[name] = lfilter([1.0], [1.0, -a], shocks, zi=[a * rng.normal(0, sd)])[0]
    drift["dbp"] += 0.5 * drift["sbp"]  # the two pressures move together
    return drift


def _segments(
    rng: np.random.Generator, t_s: np.ndarray, per_day: float, mean_min: float
) -> np.ndarray:
    """Where a probe is off, leads are off or the patient is off the monitor (walking,
    washing, a scan): whole stretches, not scattered single values."""
    off = np.zeros(len(t_s), dtype=bool)
    span_s = t_s[-1] - t_s[0]
    for _ in range(rng.poisson(per_day * span_s / 86400)):
        begin = t_s[0] + rng.uniform(0, span_s)
        off |= (t_s >= begin) & (t_s < begin + rng.exponential(mean_min * 60))
    return off


def _cuff(sbp: Any, dbp: Any) -> tuple[Any, Any]:
    """Whole mmHg, as a cuff reads, with the diastolic below the systolic."""
    sbp = np.round(np.clip(sbp, 40.0, 260.0))
    return sbp, np.round(np.clip(dbp, 20.0, sbp - 8))


def _acvpu(level: float, baseline: Baseline) -> str:
    if level > 0.95:
        return "P"
    if level > 0.8:
        return "V"
    return "C" if level > baseline.confusion_from else "A"


def _manual_set(
    c: PatientCourse, rng: np.random.Generator, t_s: float, drift: dict[str, float]
) -> dict[str, Any]:
    """A nurse's set: every NEWS2 parameter, charted by hand, sometimes incomplete."""
    p = {k: float(v[0]) for k, v in c.physiology(np.array([t_s / 3600])).items()}
    b = c.baseline
    rr = p["rr"] + drift["rr"] + rng.normal(0, 1.5)
    # An unmoving "18" is the classic estimated, uncounted respiratory rate.
    rr = 18.0 if 12 <= rr <= 22 and rng.random() < 0.2 else float(round(rr))
    sbp, dbp = _cuff(
        p["sbp"] + drift["sbp"] + rng.normal(0, 6), p["dbp"] + drift["dbp"] + rng.normal(0, 5)
    )
    fields: dict[str, Any] = {
        "source": "manual",
        "heart_rate": float(round(p["hr"] + drift["hr"] + rng.normal(0, max(3.0, b.hr_sd)))),
        "respiratory_rate": rr,
        "spo2": float(min(100, round(p["spo2"] + drift["spo2"] + rng.normal(0, 0.8)))),
        "spo2_scale": b.spo2_scale,
        "supplemental_o2": bool(p["oxygen_lpm"] > 0),
        "temperature": round(p["temp"] + drift["temp"] + rng.normal(0, 0.15), 1),
        "systolic_bp": float(sbp),
        "diastolic_bp": float(dbp),
        "consciousness": _acvpu(p["confusion"] + rng.normal(0, 0.07), b),
    }
    for name, missed in (("temperature", 0.04), ("respiratory_rate", 0.03), ("spo2", 0.03)):
        if rng.random() < missed:
            del fields[name]
    if rng.random() < 0.03:
        del fields["systolic_bp"], fields["diastolic_bp"]
    return fields


def _escalated(fields: dict[str, Any]) -> bool:
    """The RCP chart: a total of 5 or more, or any single 3, means hourly observations."""
    score = news2(
        News2Inputs(
            respiratory_rate=fields.get("respiratory_rate"),
            spo2=fields.get("spo2"),
            spo2_scale=fields["spo2_scale"],
            supplemental_o2=fields["supplemental_o2"],
            systolic_bp=fields.get("systolic_bp"),
            heart_rate=fields["heart_rate"],
            consciousness=fields["consciousness"],
            temperature=fields.get("temperature"),
        )
    )
    return score.total >= 5 or score.single_param_3


def _manual_sets(
    spec: CohortSpec,
    c: PatientCourse,
    rng: np.random.Generator,
    span: tuple[float, float],
    grid: np.ndarray,
    drift: dict[str, np.ndarray],
) -> list[tuple[int, dict[str, Any]]]:
    start_s, end_s = span
    sets = []
    t = start_s + rng.uniform(300, 1800)
    escalated = False
    while t < end_s:
        if rng.random() >= 0.05:  # a set skipped (busy shift, patient asleep or off the ward)
            here = {name: float(np.interp(t, grid, v)) for name, v in drift.items()}
            fields = _manual_set(c, rng, t, here)
            sets.append((int(t), fields))
            escalated = _escalated(fields)
        gap_s = (1.0 if escalated else spec.manual_every_h) * 3600
        jitter = min(1.0, gap_s / (4 * 3600))
        t += gap_s + jitter * float(np.clip(rng.normal(0, 900), -1800, 1800))
        if rng.random() < 0.1:
            t += jitter * rng.uniform(1800, 5400)
    return sets


def _monitor_columns(
    c: PatientCourse, rng: np.random.Generator, grid: np.ndarray, drift: dict[str, np.ndarray]
) -> tuple[np.ndarray, ...]:
    """The bedside monitor: HR, RR and SpO2 every send, NIBP every 30 or 60 min, with the
    motion spikes, false dips and dropouts that make raw monitor data noisy. Returns the
    sends that carry anything (time, HR, RR, SpO2, SBP, DBP, on oxygen), NaN where missing."""
    n = len(grid)
    p = c.physiology(grid / 3600)
    hr = p["hr"] + drift["hr"] + rng.normal(0, c.baseline.hr_sd, n)
    spikes = rng.random(n) < 0.006
    hr[spikes] += rng.uniform(25, 60, spikes.sum()) * rng.choice((-1.0, 1.0, 1.0), spikes.sum())
    rr = p["rr"] + drift["rr"] + rng.normal(0, 1.2, n)
    talking = rng.random(n) < 0.004
    rr[talking] += rng.uniform(8, 20, talking.sum())
    spo2 = p["spo2"] + drift["spo2"] + rng.normal(0, 0.6, n)
    dips = rng.random(n) < 0.005
    spo2[dips] -= rng.uniform(5, 15, dips.sum())

    spo2[_segments(rng, grid, 4.0, 8.0) | (rng.random(n) < 0.01)] = np.nan
    leads_off = _segments(rng, grid, 1.5, 10.0)
    hr[leads_off | (rng.random(n) < 0.01)] = np.nan
    rr[leads_off | (rng.random(n) < 0.01)] = np.nan
    off_monitor = _segments(rng, grid, 1.0, 30.0)

    every_s = float(rng.choice((1800.0, 3600.0)))
    cycle = np.floor((grid - rng.uniform(0, every_s)) / every_s)
    cuff = np.r_[True, np.diff(cycle) > 0] & (rng.random(n) > 0.05)
    sbp, dbp = _cuff(
        p["sbp"] + drift["sbp"] + rng.normal(0, 5, n), p["dbp"] + drift["dbp"] + rng.normal(0, 4, n)
    )
    sbp, dbp = np.where(cuff, sbp, np.nan), np.where(cuff, dbp, np.nan)

    keep = ~off_monitor & ~(np.isnan(hr) & np.isnan(rr) & np.isnan(spo2) & np.isnan(sbp))
    columns = (
        np.floor(grid).astype(np.int64),
        np.round(np.clip(hr, 20, 250)),
        np.round(np.clip(rr, 3, 70)),
        np.round(np.clip(spo2, 50, 100)),
        sbp,
        dbp,
        p["oxygen_lpm"] > 0,
    )
    return tuple(column[keep] for column in columns)


def _monitor_rows(
    columns: tuple[np.ndarray, ...], scale: int
) -> Iterator[tuple[int, dict[str, Any]]]:
    # Python lists a chunk at a time: a whole cohort's stays as lists would not fit in memory.
    for lo in range(0, len(columns[0]), 512):
        chunk = [column[lo : lo + 512].tolist() for column in columns]
        for t, hr, rr, spo2, sbp, dbp, o2 in zip(*chunk, strict=True):
            fields: dict[str, Any] = {"source": "monitor"}
            if hr == hr:
                fields["heart_rate"] = hr
            if rr == rr:
                fields["respiratory_rate"] = rr
            if spo2 == spo2:
                fields["spo2"] = spo2
                fields["spo2_scale"] = scale
                fields["supplemental_o2"] = o2
            if sbp == sbp:
                fields["systolic_bp"] = sbp
                fields["diastolic_bp"] = dbp
            yield t, fields


def _patient_events(
    spec: CohortSpec, c: PatientCourse
) -> Iterator[tuple[int, int, dict[str, Any]]]:
    rng = _rng(spec.seed, c.index, _OBSERVE)
    start_s = (c.admitted_at - c.origin).total_seconds()
    end_s = (c.discharged_at - c.origin).total_seconds()
    step = spec.monitor_interval_s
    grid = np.arange(start_s + rng.uniform(0, min(step, end_s - start_s)), end_s, step)
    drift = _drift(rng, len(grid), step)
    manual = _manual_sets(spec, c, rng, (start_s, end_s), grid, drift)
    monitor = (
        _monitor_rows(_monitor_columns(c, rng, grid, drift), c.baseline.spo2_scale)
        if c.monitored
        else iter(())
    )
    for n, (t, fields) in enumerate(heapq.merge(monitor, manual, key=itemgetter(0))):
        yield (
            t,
            c.index,
            {
                "event_id": f"{c.patient_id}-{n}",
                "patient_id": c.patient_id,
                "observed_at": isoformat(c.origin + timedelta(seconds=t)),
                "unit": c.unit,
                **fields,
            },
        )


def events(spec: CohortSpec, courses: list[PatientCourse]) -> Iterator[dict[str, Any]]:
    """Every patient's vitals events, merged in `observed_at` order (ties by patient)."""
    streams = [_patient_events(spec, c) for c in courses]
    for _, _, event in heapq.merge(*streams, key=itemgetter(0, 1)):
        yield event


def write(spec: CohortSpec, directory: Path) -> dict[str, Any]:
    cohort = courses(spec)
    return write_cohort(
        directory,
        events(spec, cohort),
        outcomes(cohort),
        info={"generator": GENERATOR, "spec": spec.info()},
    )
