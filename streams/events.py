"""Wire schemas of CONTRACTS.md: the pydantic models at Vigil's edges.

Numeric and boolean fields are strict: `"72"` or `true` where a number is expected is a
wrong type and a dead letter, never silently coerced. Unknown fields are ignored.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    model_validator,
)

_RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$")


def _rfc3339(value: object) -> object:
    """pydantic alone would also take Unix times (`1700000000`, `"1700000000"`); the
    contract allows only RFC 3339 text with an explicit offset."""
    if isinstance(value, datetime):
        return value
    if not isinstance(value, str) or not _RFC3339.match(value):
        raise ValueError("must be an RFC 3339 timestamp with an offset, e.g. 2026-11-22T10:15:02Z")
    return value


def _utc(value: datetime) -> datetime:
    return value.astimezone(UTC)


Timestamp = Annotated[AwareDatetime, BeforeValidator(_rfc3339), AfterValidator(_utc)]
EventId = Annotated[str, StringConstraints(min_length=1, max_length=128)]
PatientId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9._:-]{1,64}$")]
Short = Annotated[str, StringConstraints(max_length=64)]


def _num(**bounds: float) -> Any:
    return Field(default=None, strict=True, allow_inf_nan=False, **bounds)


class _Input(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


VITAL_FIELDS = (
    "heart_rate",
    "respiratory_rate",
    "spo2",
    "temperature",
    "systolic_bp",
    "diastolic_bp",
    "consciousness",
)


class VitalsObservation(_Input):
    event_id: EventId
    patient_id: PatientId
    observed_at: Timestamp
    encounter_id: Short | None = None
    unit: Short | None = None
    source: Short | None = None
    heart_rate: float | None = _num(gt=0, le=300)
    respiratory_rate: float | None = _num(ge=0, le=80)
    spo2: float | None = _num(ge=40, le=100)
    spo2_scale: Literal[1, 2] = 1
    supplemental_o2: bool = Field(default=False, strict=True)
    temperature: float | None = _num(ge=25, le=45)
    systolic_bp: float | None = _num(ge=20, le=300)
    diastolic_bp: float | None = _num(ge=20, le=300)
    consciousness: Literal["A", "C", "V", "P", "U"] | None = None

    @model_validator(mode="after")
    def _has_measurement(self) -> VitalsObservation:
        if all(getattr(self, name) is None for name in VITAL_FIELDS):
            raise ValueError("at least one measurement must be present")
        return self

    @property
    def observes_oxygen(self) -> bool:
        """Whether this event tells us the oxygen state.

        A monitor packet with only a heart rate says nothing about oxygen, so the
        contract's default (`false`) applies only to events that state it or carry SpO2.
        """
        return "supplemental_o2" in self.model_fields_set or self.spo2 is not None


class ClinicalNote(_Input):
    event_id: EventId
    patient_id: PatientId
    written_at: Timestamp
    note_id: Annotated[str, StringConstraints(min_length=1, max_length=128)]
    note_type: Annotated[str, StringConstraints(min_length=1, max_length=32)]
    text: Annotated[str, StringConstraints(min_length=1, max_length=100_000)]


class ImagingStudy(_Input):
    event_id: EventId
    patient_id: PatientId
    acquired_at: Timestamp
    study_uid: Annotated[str, StringConstraints(min_length=1, max_length=128)]
    modality: Annotated[str, StringConstraints(min_length=1, max_length=16)]
    body_part: Short | None = None
    image_uri: Annotated[str, StringConstraints(min_length=1, max_length=4096)]


class _Output(BaseModel):
    model_config = ConfigDict(extra="ignore")


News2Band = Literal["low", "low-medium", "medium", "high"]
RiskLevel = Literal["low", "medium", "high", "critical"]


class News2Result(_Output):
    total: int
    band: News2Band
    single_param_3: bool
    components: dict[str, int]
    missing: list[str]


class Trigger(_Output):
    topic: str
    event_id: str


class Scores(_Output):
    vitals: float | None = Field(default=None, ge=0, le=1)
    notes: float | None = Field(default=None, ge=0, le=1)
    imaging: float | None = Field(default=None, ge=0, le=1)
    fused: float | None = Field(default=None, ge=0, le=1)


class Contributor(_Output):
    feature: str
    value: float | str | None
    contribution: float


class RiskScore(_Output):
    patient_id: str
    scored_at: datetime
    as_of: datetime
    trigger: Trigger
    news2: News2Result
    scores: Scores
    risk_level: RiskLevel
    contributors: list[Contributor] = []
    model_versions: dict[str, str] = {}


class RiskAlert(_Output):
    alert_id: str
    patient_id: str
    unit: str | None = None
    """Optional addition to the contract: the ward of the triggering event, for routing."""
    raised_at: datetime
    kind: Literal["raised", "escalated", "cleared"]
    level: RiskLevel
    previous_level: RiskLevel | None
    reason: str
    recommended_action: str
    risk: RiskScore


class DeadLetterError(_Output):
    type: str
    message: str


class DeadLetter(_Output):
    received_at: datetime
    topic: str
    partition: int
    offset: int
    key: str | None
    error: DeadLetterError
    payload: str | dict[str, str]
