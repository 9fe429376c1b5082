"""Alert policy: from a patient's stream of risk scores to a few alerts people act on.

Pure functions over a small per-patient state (kept in Redis by the feature store, written
in the same pipeline as the score). Decisions use event time (`as_of`), so a replay of the
same events makes the same decisions; alert ids are derived from (patient, episode, kind,
level), so a re-published alert carries the id it had the first time.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Literal

import orjson
import yaml
from pydantic import BaseModel, ConfigDict, Field, model_validator

from features.samples import to_us
from streams.events import News2Result, RiskAlert, RiskScore

LEVELS = ("low", "medium", "high", "critical")
DEFAULT_POLICY = Path(__file__).parent / "alert_policy.yaml"
_ALERT_NS = uuid.UUID("6f1c8e4e-7a43-4c55-9d0f-3f1c2a9b7e10")
_MINUTE_US = 60_000_000


def rank(level: str) -> int:
    return LEVELS.index(level)


class Threshold(BaseModel):
    model_config = ConfigDict(populate_by_name=True, frozen=True)
    raise_at: float = Field(alias="raise", ge=0, le=1)
    clear: float = Field(ge=0, le=1)


class AlertPolicy(BaseModel):
    model_config = ConfigDict(frozen=True)
    levels: dict[Literal["medium", "high", "critical"], Threshold]
    suppress_minutes: float = Field(ge=0)
    clear_dwell_minutes: float = Field(ge=0)
    recommended_actions: dict[Literal["low", "medium", "high", "critical"], str]
    sepsis_prompt: str

    @model_validator(mode="after")
    def _consistent(self) -> AlertPolicy:
        if set(self.levels) != {"medium", "high", "critical"}:
            raise ValueError("levels must define medium, high and critical")
        raises = [self.levels[name].raise_at for name in LEVELS[1:]]  # type: ignore[index]
        if raises != sorted(raises):
            raise ValueError("raise thresholds must increase from medium to critical")
        for name, t in self.levels.items():
            if t.clear > t.raise_at:
                raise ValueError(f"{name}: clear ({t.clear}) is above raise ({t.raise_at})")
        return self

    @classmethod
    def load(cls, path: Path | None = None) -> AlertPolicy:
        return cls.model_validate(yaml.safe_load((path or DEFAULT_POLICY).read_text()))


def news2_floor(result: News2Result) -> str:
    """RCP: band high needs an emergency response; medium or a single red score, urgent."""
    if result.band == "high":
        return "high"
    if result.band in ("medium", "low-medium"):
        return "medium"
    return "low"


def level_for(policy: AlertPolicy, fused: float, news2: News2Result, held: str = "low") -> str:
    """The patient's level: raise thresholds above the held level, clear thresholds at or
    below it (hysteresis), never under the NEWS2 floor."""
    level = news2_floor(news2)
    for name in LEVELS[1:]:
        t = policy.levels[name]  # type: ignore[index]
        cut = t.clear if rank(name) <= rank(held) else t.raise_at
        if fused >= cut and rank(name) > rank(level):
            level = name
    return level


@dataclass
class AlertState:
    """What the policy remembers of one patient (JSON in Redis, see features/KEYS.md)."""

    episode: int = 0
    """Event time (us) at which the current or last episode opened; 0 before any. Unlike a
    counter it survives a loss of this state without reusing an old episode's alert ids."""
    level: str = "low"
    """Current level after hysteresis."""
    alerted: str = "low"
    """Highest level alerted in the open episode; `low` when no episode is open."""
    low_since_us: int | None = None
    last_alert_us: dict[str, int] = field(default_factory=dict)
    unit: str | None = None
    """The ward of the patient's latest event that named one."""

    def to_json(self) -> bytes:
        return orjson.dumps(
            self
        )  # orjson writes a dataclass as asdict would, without its deep copy

    @classmethod
    def from_json(cls, raw: bytes | None) -> AlertState:
        return cls(**orjson.loads(raw)) if raw else cls()


_LABELS = {
    "respiratory_rate": ("respiratory rate", "{:g}/min"),
    "spo2": ("SpO2", "{:g} %"),
    "supplemental_o2": ("on supplemental oxygen", ""),
    "systolic_bp": ("systolic BP", "{:g} mmHg"),
    "heart_rate": ("heart rate", "{:g}/min"),
    "consciousness": ("new confusion or reduced consciousness", "({})"),
    "temperature": ("temperature", "{:g} °C"),
    "total": ("NEWS2 total", "{:g}"),
    "spo2_scale": ("SpO2 scale", "{:g}"),
}


_VITALS = {
    "hr": ("heart rate", "/min"),
    "rr": ("respiratory rate", "/min"),
    "spo2": ("SpO2", " %"),
    "temp": ("temperature", " °C"),
    "sbp": ("systolic BP", " mmHg"),
    "dbp": ("diastolic BP", " mmHg"),
    "map": ("mean arterial pressure", " mmHg"),
    "shock_index": ("shock index", ""),
}
_STATS = {"mean": "mean", "min": "lowest", "max": "highest", "std": "variability"}
_ROLLING = re.compile(r"^(?P<vital>[a-z0-9_]+?)_(?P<stat>[a-z]+)_(?P<window>\d+h)$")
_CHANGE = re.compile(r"^(?P<vital>[a-z0-9_]+?)_(?P<stat>[a-z]+)_(?P<window>\d+h)_vs_mean_24h$")


def _driver(feature: str, value: object) -> str:
    """A contributor as a nurse reads it: "heart rate 22/min above its 24 h mean"."""
    name = feature.removeprefix("news2_")
    if name == "supplemental_o2" and not value:
        return "on room air"
    if name == "consciousness" and value == "A":
        return "alert (AVPU A)"
    if name in _LABELS:
        label, fmt = _LABELS[name]
        if value is None:
            return f"{label} not recorded"
        return f"{label} {fmt.format(value)}".strip() if fmt else label
    if isinstance(value, float):
        if (m := _CHANGE.match(feature)) and m["vital"] in _VITALS:
            label, unit = _VITALS[m["vital"]]
            side = "above" if value >= 0 else "below"
            recent = "latest" if m["stat"] == "last" else f"{m['window']} mean"
            return f"{label} {recent} {abs(value):.3g}{unit} {side} its 24 h mean"
        if (m := _ROLLING.match(feature)) and m["vital"] in _VITALS:
            label, unit = _VITALS[m["vital"]]
            stat, window = m["stat"], m["window"]
            if stat == "slope":
                return f"{label} trend over {window} {value:+.3g}{unit} per hour"
            if stat == "count":
                return f"{label} {value:g} readings in {window}"
            if stat == "last":
                return f"{label} {value:.3g}{unit}"
            return f"{label} {window} {_STATS[stat]} {value:.3g}{'' if stat == 'std' else unit}"
        return f"{feature.replace('_', ' ')} {value:g}"
    m = _CHANGE.match(feature) or _ROLLING.match(feature)
    if value is None and m and m["vital"] in _VITALS:
        return f"no {_VITALS[m['vital']][0]} readings in {m['window']}"
    return feature


def reason(risk: RiskScore) -> str:
    """The score and the three contributors that raise it most, each said once: NEWS2's
    heart rate and the model's latest heart rate read the same to a nurse."""
    worded = (_driver(c.feature, c.value) for c in risk.contributors if c.contribution > 0)
    drivers = list(dict.fromkeys(worded))[:3]
    head = f"NEWS2 {risk.news2.total} ({risk.news2.band}), risk {risk.scores.fused or 0:.2f}"
    return f"{head}: {', '.join(drivers)}." if drivers else f"{head}."


def suggests_sepsis(risk: RiskScore) -> bool:
    """Abnormal temperature with a raised heart or breathing rate or a low pressure."""
    c = risk.news2.components
    return c["temperature"] >= 1 and (
        c["heart_rate"] >= 1 or c["respiratory_rate"] >= 2 or c["systolic_bp"] >= 2
    )


def alert_id(prefix: str, patient_id: str, episode: int, kind: str, level: str) -> str:
    return str(uuid.uuid5(_ALERT_NS, f"{prefix}|{patient_id}|{episode}|{kind}|{level}"))


def decide(
    policy: AlertPolicy,
    state: AlertState,
    risk: RiskScore,
    prefix: str,
    unit: str | None,
    raised_at: datetime,
) -> tuple[AlertState, RiskAlert | None, bool]:
    """(new state, alert to publish or None, whether an alert was suppressed).

    Also sets `risk.risk_level` to the level after hysteresis.
    """
    now = to_us(risk.as_of)
    level = level_for(policy, risk.scores.fused or 0.0, risk.news2, state.level)
    risk.risk_level = level  # type: ignore[assignment]
    new = replace(state, level=level, last_alert_us=dict(state.last_alert_us))
    if unit:
        new.unit = unit
    kind: str | None = None
    previous = state.alerted
    suppressed = False
    if level != "low":
        new.low_since_us = None
        if state.alerted == "low":
            new.episode = now
            new.alerted = level
            last = state.last_alert_us.get(level)
            if last is not None and now - last < policy.suppress_minutes * _MINUTE_US:
                suppressed = True
            else:
                kind = "raised"
                new.last_alert_us[level] = now
        elif rank(level) > rank(state.alerted):
            kind = "escalated"
            new.alerted = level
            new.last_alert_us[level] = now
    elif state.alerted != "low":
        new.low_since_us = state.low_since_us if state.low_since_us is not None else now
        if now - new.low_since_us >= policy.clear_dwell_minutes * _MINUTE_US:
            kind = "cleared"
            new.alerted = "low"
            new.low_since_us = None
            new.last_alert_us[previous] = now
    if kind is None:
        return new, None, suppressed
    action = policy.recommended_actions[level]  # type: ignore[index]
    if kind != "cleared" and suggests_sepsis(risk):
        action = f"{action} {policy.sepsis_prompt}"
    text = reason(risk)
    if kind == "cleared":
        text = f"Back to low risk for {policy.clear_dwell_minutes:g} min after {previous}. {text}"
    alert = RiskAlert(
        alert_id=alert_id(prefix, risk.patient_id, new.episode, kind, level),
        patient_id=risk.patient_id,
        unit=new.unit,
        raised_at=raised_at,
        kind=kind,  # type: ignore[arg-type]
        level=level,  # type: ignore[arg-type]
        previous_level=previous,  # type: ignore[arg-type]
        reason=text,
        recommended_action=action,
        risk=risk,
    )
    return new, alert, suppressed
