"""One vitals event as the feature store sees it: derived vitals computed, values packed.

Shared by the Redis store and the reference implementation so both read the same numbers.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from streams.events import VitalsObservation

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_US = timedelta(microseconds=1)


def to_us(ts: datetime) -> int:
    """Exact integer microseconds since the epoch (float seconds would round)."""
    return (ts - _EPOCH) // _US


def from_us(us: int) -> datetime:
    return _EPOCH + timedelta(microseconds=us)


@dataclass(frozen=True, slots=True)
class VitalsSample:
    event_id: str
    observed_us: int
    vitals: tuple[float | None, ...]
    """hr, rr, spo2, temp, sbp, dbp, map, shock_index (features.windows.VITALS order)."""
    spo2_scale: int | None
    supplemental_o2: bool | None
    consciousness: str | None

    @classmethod
    def from_event(cls, obs: VitalsObservation) -> VitalsSample:
        sbp, dbp, hr = obs.systolic_bp, obs.diastolic_bp, obs.heart_rate
        mean_ap = (sbp + 2 * dbp) / 3 if sbp is not None and dbp is not None else None
        shock = hr / sbp if hr is not None and sbp is not None else None
        return cls(
            event_id=obs.event_id,
            observed_us=to_us(obs.observed_at),
            vitals=(hr, obs.respiratory_rate, obs.spo2, obs.temperature, sbp, dbp, mean_ap, shock),
            spo2_scale=obs.spo2_scale if obs.spo2 is not None else None,
            supplemental_o2=obs.supplemental_o2 if obs.observes_oxygen else None,
            consciousness=obs.consciousness,
        )

    def packed(self) -> str:
        """Comma-separated fields of KEYS.md; `repr` round-trips every float exactly."""
        fields = [repr(float(v)) if v is not None else "" for v in self.vitals]
        fields.append(str(self.spo2_scale) if self.spo2_scale is not None else "")
        o2 = self.supplemental_o2
        fields.append("" if o2 is None else ("1" if o2 else "0"))
        fields.append(self.consciousness or "")
        return ",".join(fields)
