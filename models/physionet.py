"""The PhysioNet/Computing in Cardiology Challenge 2019 (early prediction of sepsis) as a
Vigil cohort, so that training, evaluation and a Kafka replay run on real ICU stays exactly
as they run on the simulated ward (`models.eventlog`).

The challenge ships one pipe-separated `.psv` file per stay: a header of the 41 `COLUMNS`,
then one row per ICU hour with `NaN` where nothing was measured. Decisions of the mapping:

- HR, Resp, O2Sat, Temp (already °C), SBP and DBP become the contract's vitals. The `MAP`
  column is dropped: Vigil derives MAP from SBP and DBP (`features.samples`), and a second
  value that disagrees with the derived one would make file and stream features differ.
- FiO2 states whether the patient is on oxygen: above room air (0.21; a value over 1 can
  only be a percentage, so 21) is `supplemental_o2` true, at or below it false; with no
  FiO2 the field is left out, so the event says nothing about oxygen rather than "room
  air". FiO2 at or below 0, or over 100 %, is not a measurement and is dropped.
- A value outside the contract's bounds is dropped, not clipped: a clipped value would be
  a measurement nobody took. Drops are counted per column in `cohort.json`. A row left
  without any vital is no event (the contract needs one).
- The files hold hours since ICU admission (`ICULOS`) only. Patient i (files sorted by
  name) is admitted `STAGGER` * i after `start`, so stays overlap and a replay interleaves
  patients like a real unit; an event is at admission + ICULOS hours.
- `SepsisLabel` is 1 from 6 h before the clinical onset t_sepsis, so t_sepsis = first
  labelled hour + 6 h. Where the stay ends sooner, t_sepsis is clipped to the last row:
  an event outside the observed stay could not be checked against any data, at the cost
  of placing that onset up to 6 h early. Observation for the label ends at the event, so
  `discharged_at` is t_sepsis for sepsis patients. Rows after it stay in the event log
  (they are real measurements a replay publishes); labelling must stop at `discharged_at`.
"""

from __future__ import annotations

import heapq
import math
import operator
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, NamedTuple

from pydantic import TypeAdapter, ValidationError

from models.eventlog import Outcome, isoformat, write_cohort
from streams.events import PatientId, VitalsObservation

COLUMNS: tuple[str, ...] = (
    "HR",
    "O2Sat",
    "Temp",
    "SBP",
    "MAP",
    "DBP",
    "Resp",
    "EtCO2",
    "BaseExcess",
    "HCO3",
    "FiO2",
    "pH",
    "PaCO2",
    "SaO2",
    "AST",
    "BUN",
    "Alkalinephos",
    "Calcium",
    "Chloride",
    "Creatinine",
    "Bilirubin_direct",
    "Glucose",
    "Lactate",
    "Magnesium",
    "Phosphate",
    "Potassium",
    "Bilirubin_total",
    "TroponinI",
    "Hct",
    "Hgb",
    "PTT",
    "WBC",
    "Fibrinogen",
    "Platelets",
    "Age",
    "Gender",
    "Unit1",
    "Unit2",
    "HospAdmTime",
    "ICULOS",
    "SepsisLabel",
)
HEADER = "|".join(COLUMNS)
SOURCE = "physionet2019"
START = datetime(2019, 1, 1, tzinfo=UTC)
STAGGER = timedelta(minutes=10)
"""About 40 h stays (the challenge's mean) 10 min apart: a couple of hundred beds at once."""
LABEL_LEAD = timedelta(hours=6)
ROOM_AIR_FIO2 = 0.21

VITALS: dict[str, str] = {
    "HR": "heart_rate",
    "Resp": "respiratory_rate",
    "O2Sat": "spo2",
    "Temp": "temperature",
    "SBP": "systolic_bp",
    "DBP": "diastolic_bp",
}
"""PSV column → `VitalsObservation` field."""

_USED = (*VITALS, "FiO2", "Unit1", "Unit2", "ICULOS", "SepsisLabel")
_INDEX = {name: COLUMNS.index(name) for name in _USED}
_PATIENT_ID: TypeAdapter[str] = TypeAdapter(PatientId)
_COMPARISONS = (("gt", operator.gt), ("ge", operator.ge), ("lt", operator.lt), ("le", operator.le))


def _limits(field: str) -> tuple[tuple[Callable[[float, float], bool], float], ...]:
    """The bounds read from the contract model itself, so the loader cannot drift from it."""
    return tuple(
        (compare, getattr(constraint, name))
        for constraint in VitalsObservation.model_fields[field].metadata
        for name, compare in _COMPARISONS
        if getattr(constraint, name, None) is not None
    )


_LIMITS = {field: _limits(field) for field in VITALS.values()}


def _in_contract(field: str, value: float) -> bool:
    return all(compare(value, bound) for compare, bound in _LIMITS[field])


def _check_header(path: Path, header: str) -> None:
    names = header.split("|")
    for position, expected in enumerate(COLUMNS):
        found = names[position] if position < len(names) else None
        if found != expected:
            what = "missing" if found is None else repr(found)
            raise ValueError(
                f"{path}: not a PhysioNet 2019 file: header column {position + 1} is {what},"
                f" expected {expected!r}"
            )
    if len(names) > len(COLUMNS):
        raise ValueError(
            f"{path}: not a PhysioNet 2019 file: header column {len(COLUMNS) + 1} is"
            f" {names[len(COLUMNS)]!r}, expected none after {COLUMNS[-1]!r}"
        )


class _Row(NamedTuple):
    line: int
    values: dict[str, float | None]
    """Only the columns Vigil uses; None where the file says `NaN`."""


def _read_rows(path: Path) -> list[_Row]:
    rows: list[_Row] = []
    with path.open(encoding="utf-8") as f:
        _check_header(path, f.readline().rstrip("\r\n"))
        for number, line in enumerate(f, start=2):
            fields = line.rstrip("\r\n").split("|")
            if fields == [""]:
                continue
            if len(fields) != len(COLUMNS):
                raise ValueError(f"{path}:{number}: {len(fields)} fields, expected {len(COLUMNS)}")
            values: dict[str, float | None] = {}
            for name, index in _INDEX.items():
                try:
                    value = float(fields[index])
                except ValueError:
                    raise ValueError(
                        f"{path}:{number}: {name} is {fields[index]!r}, not a number or NaN"
                    ) from None
                values[name] = None if math.isnan(value) else value
            rows.append(_Row(number, values))
    return rows


def _unit(values: dict[str, float | None]) -> str | None:
    if values["Unit1"] == 1:
        return "MICU"
    if values["Unit2"] == 1:
        return "SICU"
    return None


def _fio2_fraction(fio2: float) -> float | None:
    fraction = fio2 / 100 if fio2 > 1 else fio2
    return fraction if 0 < fraction <= 1 else None


class _Stay(NamedTuple):
    events: list[dict[str, Any]]
    outcome: Outcome
    dropped: Counter[str]
    """Values dropped as out of range, per PSV column."""
    rows: int


def _load(path: Path, admitted_at: datetime) -> _Stay:
    patient_id = path.stem
    try:
        _PATIENT_ID.validate_python(patient_id)
    except ValidationError:
        raise ValueError(f"{path}: file name {patient_id!r} is not a valid patient_id") from None
    rows = _read_rows(path)
    if not rows:
        raise ValueError(f"{path}: no rows after the header")
    unit = next((u for row in rows if (u := _unit(row.values)) is not None), None)
    events: list[dict[str, Any]] = []
    dropped: Counter[str] = Counter()
    first_label: datetime | None = None
    previous_hour = -1.0
    at = admitted_at
    for row in rows:
        hour = row.values["ICULOS"]
        if hour is None or not hour.is_integer() or hour <= previous_hour:
            raise ValueError(
                f"{path}:{row.line}: ICULOS is {hour}; it must be whole hours from 0,"
                " increasing row by row"
            )
        previous_hour = hour
        at = admitted_at + timedelta(hours=hour)
        if first_label is None and row.values["SepsisLabel"] == 1:
            first_label = at
        vitals: dict[str, Any] = {}
        for column, field in VITALS.items():
            value = row.values[column]
            if value is None:
                continue
            if _in_contract(field, value):
                vitals[field] = value
            else:
                dropped[column] += 1
        fio2 = row.values["FiO2"]
        fraction = None if fio2 is None else _fio2_fraction(fio2)
        if fio2 is not None and fraction is None:
            dropped["FiO2"] += 1
        if not vitals:
            continue
        if fraction is not None:
            vitals["supplemental_o2"] = fraction > ROOM_AIR_FIO2
        event: dict[str, Any] = {
            "event_id": f"{patient_id}-{int(hour)}",
            "patient_id": patient_id,
            "observed_at": isoformat(at),
        }
        if unit is not None:
            event["unit"] = unit
        event["source"] = SOURCE
        event.update(vitals)
        events.append(event)
    onset = None if first_label is None else min(first_label + LABEL_LEAD, at)
    outcome = Outcome(
        patient_id=patient_id,
        unit=unit,
        admitted_at=admitted_at,
        discharged_at=at if onset is None else onset,
        event_at=onset,
        event_kind=None if onset is None else "sepsis",
        syndrome=None if onset is None else "sepsis",
    )
    return _Stay(events, outcome, dropped, len(rows))


def load_psv(path: Path, admitted_at: datetime) -> tuple[list[dict[str, Any]], Outcome]:
    """One stay's `vitals.v1` events (in hour order) and its outcome."""
    stay = _load(path, admitted_at)
    return stay.events, stay.outcome


def _merged(paths: list[Path], admissions: list[datetime]) -> Iterator[dict[str, Any]]:
    """All stays' events in time order (ties: file order), holding only overlapping stays.

    A stay has no event before its admission and admissions increase with file order, so
    everything before the next admission can be written before that file is read; the
    whole challenge (1.5 M rows) never sits in memory at once.
    """
    heap: list[tuple[datetime, int, dict[str, Any], Iterator[dict[str, Any]]]] = []

    def push(index: int, events: Iterator[dict[str, Any]]) -> None:
        event = next(events, None)
        if event is not None:
            at = datetime.fromisoformat(event["observed_at"])
            heapq.heappush(heap, (at, index, event, events))

    def drain(before: datetime | None) -> Iterator[dict[str, Any]]:
        while heap and (before is None or heap[0][0] < before):
            _, index, event, rest = heapq.heappop(heap)
            yield event
            push(index, rest)

    for index, (path, admitted_at) in enumerate(zip(paths, admissions, strict=True)):
        yield from drain(admitted_at)
        push(index, iter(_load(path, admitted_at).events))
    yield from drain(None)


def convert(folder: Path, out: Path, start: datetime = START) -> dict[str, Any]:
    """Every `*.psv` in `folder` (not its subfolders) → the cohort directory `out`.

    Each file is read twice: once for outcomes and counts, which `cohort.json` needs before
    the events are written, and once while merging, so memory stays bounded.
    """
    paths = sorted(folder.glob("*.psv"), key=lambda p: p.name)
    if not paths:
        raise ValueError(f"{folder}: no .psv files")
    admissions = [start + index * STAGGER for index in range(len(paths))]
    outcomes: list[Outcome] = []
    dropped: Counter[str] = Counter(dict.fromkeys((*VITALS, "FiO2"), 0))
    rows = events = 0
    for path, admitted_at in zip(paths, admissions, strict=True):
        stay = _load(path, admitted_at)
        outcomes.append(stay.outcome)
        dropped.update(stay.dropped)
        rows += stay.rows
        events += len(stay.events)
    info = {
        "source": SOURCE,
        "folder": str(folder),
        "files": len(paths),
        "start": isoformat(start),
        "stagger_s": STAGGER.total_seconds(),
        "rows": rows,
        "rows_without_vitals": rows - events,
        "out_of_range": dict(dropped),
    }
    return write_cohort(out, _merged(paths, admissions), outcomes, info)


def _psv_number(value: float | None) -> str:
    """Whole numbers without a decimal point and `NaN` for missing, as the challenge writes
    them; `repr` keeps every other float exact."""
    if value is None or math.isnan(value):
        return "NaN"
    value = float(value)
    return str(int(value)) if value.is_integer() else repr(value)


def write_psv(path: Path, rows: list[dict[str, float | None]]) -> None:
    """Rows (column → value; absent or None is missing) as a challenge file, to make test
    and sample data in exactly the distributed format."""
    lines = [HEADER]
    for row in rows:
        unknown = sorted(set(row) - set(COLUMNS))
        if unknown:
            raise ValueError(f"not PhysioNet 2019 columns: {unknown}")
        lines.append("|".join(_psv_number(row.get(name)) for name in COLUMNS))
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
