"""The input schemas accept what CONTRACTS.md allows and nothing else."""

from __future__ import annotations

from datetime import UTC, datetime

import orjson
import pytest
from pydantic import ValidationError

from features.samples import VitalsSample, from_us, to_us
from streams.deadletters import RawRecord, dead_letter, parse_record
from streams.events import VitalsObservation

BASE = {"event_id": "e1", "patient_id": "p-1", "observed_at": "2026-11-22T10:15:02+01:00"}


def parse(**fields: object) -> VitalsObservation:
    return VitalsObservation.model_validate_json(orjson.dumps({**BASE, **fields}))


def test_timestamps_are_normalised_to_utc() -> None:
    obs = parse(heart_rate=80)
    assert obs.observed_at == datetime(2026, 11, 22, 9, 15, 2, tzinfo=UTC)
    assert obs.observed_at.utcoffset().total_seconds() == 0  # type: ignore[union-attr]


def test_unknown_fields_are_ignored() -> None:
    assert parse(heart_rate=80, vendor_extension={"a": 1}).heart_rate == 80


@pytest.mark.parametrize(
    "fields",
    [
        {"heart_rate": 0},  # 0 < hr
        {"heart_rate": 300.5},
        {"respiratory_rate": -1},
        {"respiratory_rate": 81},
        {"spo2": 39.9},
        {"spo2": 100.1},
        {"temperature": 24.9},
        {"temperature": 45.1},
        {"systolic_bp": 19},
        {"diastolic_bp": 301},
        {"heart_rate": "80"},
        {"heart_rate": True},
        {"supplemental_o2": "yes"},
        {"consciousness": "X"},
        {"spo2": 95, "spo2_scale": 3},
        {},  # no measurement
        {"heart_rate": 80, "patient_id": "has space"},
        {"heart_rate": 80, "patient_id": "x" * 65},
        {"heart_rate": 80, "event_id": ""},
        {"heart_rate": 80, "observed_at": "2026-11-22T10:15:02"},  # no offset
        {"heart_rate": 80, "observed_at": 1700000000},  # Unix time is not RFC 3339
        {"heart_rate": 80, "observed_at": "1700000000"},
        {"heart_rate": 80, "observed_at": "2026-11-22"},
        {"heart_rate": 80, "unit": "u" * 65},
    ],
)
def test_invalid_vitals_are_rejected(fields: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        parse(**fields)


def test_non_finite_numbers_are_rejected() -> None:
    raw = b'{"event_id":"e","patient_id":"p","observed_at":"2026-11-22T10:00:00Z","heart_rate":NaN}'
    with pytest.raises(ValidationError):
        VitalsObservation.model_validate_json(raw)


def test_boundaries_are_accepted() -> None:
    obs = parse(heart_rate=300, respiratory_rate=0, spo2=40, temperature=45, systolic_bp=20)
    assert obs.respiratory_rate == 0


def test_oxygen_state_is_observed_only_when_stated_or_with_spo2() -> None:
    assert VitalsSample.from_event(parse(heart_rate=80)).supplemental_o2 is None
    assert VitalsSample.from_event(parse(spo2=95)).supplemental_o2 is False
    assert VitalsSample.from_event(parse(heart_rate=80, supplemental_o2=True)).supplemental_o2


def test_derived_vitals_need_both_inputs_from_the_same_event() -> None:
    both = VitalsSample.from_event(parse(heart_rate=100, systolic_bp=120, diastolic_bp=60))
    assert both.vitals[6] == pytest.approx(80.0) and both.vitals[7] == pytest.approx(100 / 120)
    alone = VitalsSample.from_event(parse(systolic_bp=120))
    assert alone.vitals[6] is None and alone.vitals[7] is None


def test_microsecond_timestamps_round_trip_exactly() -> None:
    ts = datetime(2026, 11, 22, 10, 15, 2, 123456, tzinfo=UTC)
    assert from_us(to_us(ts)) == ts


def _record(value: bytes | None, key: bytes | None = b"p-1") -> RawRecord:
    return RawRecord("vitals.v1", 3, 42, key, value)


@pytest.mark.parametrize(
    ("value", "kind"),
    [
        (b"{not json", "invalid_json"),
        (b"\xff\xfe\x00", "not_utf8"),
        (None, "empty"),
        (b" " * (1024 * 1024 + 1), "too_large"),
        (orjson.dumps({**BASE, "heart_rate": "fast"}), "validation"),
    ],
)
def test_dead_letter_names_the_reason_and_keeps_the_bytes(value: bytes | None, kind: str) -> None:
    with pytest.raises(Exception) as caught:
        parse_record(_record(value), VitalsObservation, max_bytes=1024 * 1024)
    letter = dead_letter(_record(value), caught.value)  # type: ignore[arg-type]
    assert letter.error.type == kind and letter.error.message
    assert (letter.topic, letter.partition, letter.offset, letter.key) == (
        "vitals.v1",
        3,
        42,
        "p-1",
    )
    if kind == "not_utf8":
        assert letter.payload == {"base64": "//4A"}
