"""NEWS2 (Royal College of Physicians, 2017) exactly as CONTRACTS.md states it.

Written as explicit band tables rather than a library call: no maintained package
implements NEWS2, and the tables are the clinical specification a reviewer checks.
"""

from __future__ import annotations

from dataclasses import dataclass

# (inclusive upper bound, points); a value above the last bound gets the last points.
_RR = ((8, 3), (11, 1), (20, 0), (24, 2), (float("inf"), 3))
_SPO2_SCALE1 = ((91, 3), (93, 2), (95, 1), (float("inf"), 0))
_SPO2_SCALE2_LOW = ((83, 3), (85, 2), (87, 1))
_SPO2_SCALE2_O2 = ((92, 0), (94, 1), (96, 2), (float("inf"), 3))
_SBP = ((90, 3), (100, 2), (110, 1), (219, 0), (float("inf"), 3))
_HR = ((40, 3), (50, 1), (90, 0), (110, 1), (130, 2), (float("inf"), 3))
_TEMP = ((35.0, 3), (36.0, 1), (38.0, 0), (39.0, 1), (float("inf"), 2))

PARAMETERS = (
    "respiratory_rate",
    "spo2",
    "supplemental_o2",
    "systolic_bp",
    "heart_rate",
    "consciousness",
    "temperature",
)


def _band(value: float, table: tuple[tuple[float, int], ...]) -> int:
    for upper, points in table:
        if value <= upper:
            return points
    return table[-1][1]


def score_spo2(spo2: float, scale: int, on_oxygen: bool) -> int:
    if scale != 2:
        return _band(spo2, _SPO2_SCALE1)
    if spo2 <= 87:
        return _band(spo2, _SPO2_SCALE2_LOW)
    return _band(spo2, _SPO2_SCALE2_O2) if on_oxygen else 0


@dataclass(frozen=True, slots=True)
class News2Inputs:
    """Latest value of each parameter inside the look-back window, `None` where absent."""

    respiratory_rate: float | None = None
    spo2: float | None = None
    spo2_scale: int = 1
    supplemental_o2: bool | None = None
    systolic_bp: float | None = None
    heart_rate: float | None = None
    consciousness: str | None = None
    temperature: float | None = None


@dataclass(frozen=True, slots=True)
class News2:
    total: int
    band: str
    single_param_3: bool
    components: dict[str, int]
    missing: list[str]


def news2(inputs: News2Inputs) -> News2:
    on_oxygen = bool(inputs.supplemental_o2)
    scorers = {
        "respiratory_rate": lambda v: _band(v, _RR),
        "spo2": lambda v: score_spo2(v, inputs.spo2_scale, on_oxygen),
        "supplemental_o2": lambda v: 2 if v else 0,
        "systolic_bp": lambda v: _band(v, _SBP),
        "heart_rate": lambda v: _band(v, _HR),
        "consciousness": lambda v: 0 if v == "A" else 3,
        "temperature": lambda v: _band(v, _TEMP),
    }
    components: dict[str, int] = {}
    missing: list[str] = []
    for name in PARAMETERS:
        value = getattr(inputs, name)
        if value is None:
            components[name] = 0
            missing.append(name)
        else:
            components[name] = scorers[name](value)
    total = sum(components.values())
    single3 = any(points == 3 for points in components.values())
    if total >= 7:
        band = "high"
    elif total >= 5:
        band = "medium"
    elif single3:
        band = "low-medium"
    else:
        band = "low"
    return News2(total, band, single3, components, missing)
