"""PhysioNet 2019 challenge files become a valid, time-ordered, correctly labelled cohort."""

from __future__ import annotations

import itertools
import random
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import pytest

from models.eventlog import read_info, read_outcomes, read_vitals
from models.physionet import COLUMNS, STAGGER, convert, load_psv, write_psv
from streams.events import VitalsObservation

START = datetime(2026, 1, 1, tzinfo=UTC)
H = timedelta(hours=1)
VITAL_COLUMNS = {
    "HR": "heart_rate",
    "O2Sat": "spo2",
    "Temp": "temperature",
    "SBP": "systolic_bp",
    "DBP": "diastolic_bp",
    "Resp": "respiratory_rate",
}

# Typed from the challenge description, independently of COLUMNS; two rows as in p000001.psv.
LITERAL = (
    "HR|O2Sat|Temp|SBP|MAP|DBP|Resp|EtCO2|BaseExcess|HCO3|FiO2|pH|PaCO2|SaO2|AST|BUN|"
    "Alkalinephos|Calcium|Chloride|Creatinine|Bilirubin_direct|Glucose|Lactate|Magnesium|"
    "Phosphate|Potassium|Bilirubin_total|TroponinI|Hct|Hgb|PTT|WBC|Fibrinogen|Platelets|"
    "Age|Gender|Unit1|Unit2|HospAdmTime|ICULOS|SepsisLabel\n"
    "NaN|NaN|NaN|NaN|NaN|NaN|NaN|NaN|NaN|NaN|NaN|NaN|NaN|NaN|NaN|NaN|NaN|NaN|NaN|NaN|"
    "NaN|NaN|NaN|NaN|NaN|NaN|NaN|NaN|NaN|NaN|NaN|NaN|NaN|NaN|83.14|0|NaN|NaN|-0.03|1|0\n"
    "97|95|36.11|98|75.33|NaN|19|NaN|NaN|NaN|0.4|NaN|NaN|NaN|NaN|NaN|NaN|NaN|NaN|NaN|"
    "NaN|NaN|NaN|NaN|NaN|NaN|NaN|NaN|NaN|NaN|NaN|NaN|NaN|NaN|83.14|0|0|1|-0.03|2|1\n"
)


def row(hour: int, label: int = 0, micu: bool = True, **values: float | None) -> dict:
    return {
        "Age": 61.0,
        "Gender": 1.0,
        "Unit1": 1.0 if micu else 0.0,
        "Unit2": 0.0 if micu else 1.0,
        "HospAdmTime": -0.03,
        "ICULOS": float(hour),
        "SepsisLabel": float(label),
        **values,
    }


# p000001: MICU, never septic; NaNs, labs-only and FiO2-only hours, MAP disagreeing with
# SBP/DBP, FiO2 as fractions and as percentages.
CALM = [
    row(1, HR=82.0, O2Sat=97.0, Temp=36.8, SBP=121.0, MAP=50.0, DBP=77.0, Resp=16.0),
    row(2, HR=85.5, O2Sat=96.0, FiO2=0.5, Lactate=1.1),
    row(3, Lactate=1.4, Glucose=120.0),
    row(4, FiO2=0.35),
    row(5, HR=90.0, Resp=18.0, FiO2=0.21, MAP=200.0),
    row(6, SBP=130.0, DBP=80.0, FiO2=40.0),
    row(7, Temp=37.25, FiO2=21.0),
]
# p000002: SICU, labelled from hour 4, so onset at hour 10, before its last row (12).
SEPTIC = [
    row(h, label=int(h >= 4), micu=False, HR=90.0 + 3 * h, Resp=18.0 + h, SBP=118.0 - 2 * h)
    for h in range(1, 13)
]
# p000003: labelled from hour 3 but the stay ends at hour 5: onset clipped to hour 5.
SHORT = [row(h, label=int(h >= 3), HR=100.0 + h, O2Sat=94.0) for h in range(1, 6)]
# p000004: values outside the contract next to values exactly on its bounds.
ODD = [
    row(2, HR=0.0, O2Sat=40.0, Temp=20.0, Resp=0.0),
    row(3, HR=301.0, O2Sat=39.9, Temp=45.0, SBP=19.0, DBP=300.0),
    row(4, HR=300.0, Resp=81.0, Temp=45.5, FiO2=0.0),
    row(5, O2Sat=101.0, FiO2=150.0),
]
STAYS = {"p000001": CALM, "p000002": SEPTIC, "p000003": SHORT, "p000004": ODD}


def make_folder(tmp_path: Path, stays: dict[str, list[dict]]) -> Path:
    folder = tmp_path / "psv"
    folder.mkdir()
    for stem, rows in stays.items():
        write_psv(folder / f"{stem}.psv", rows)
    return folder


def converted(tmp_path: Path, stays: dict[str, list[dict]] = STAYS) -> tuple[Path, dict, list]:
    out = tmp_path / "cohort"
    info = convert(make_folder(tmp_path, stays), out, start=START)
    lines = (out / "vitals.jsonl").read_bytes().splitlines()
    return out, info, [orjson.loads(line) for line in lines]


def vitals_of(psv_row: dict) -> dict[str, float]:
    return {f: psv_row[c] for c, f in VITAL_COLUMNS.items() if psv_row.get(c) is not None}


def back_to_psv(event: dict) -> dict[str, float | None]:
    return {c: event.get(f) for c, f in VITAL_COLUMNS.items()}


def test_write_psv_writes_the_challenge_format(tmp_path: Path) -> None:
    path = tmp_path / "p000009.psv"
    write_psv(path, [{"HR": 97.0, "Temp": 36.11, "ICULOS": 1.0, "SepsisLabel": 0.0}])
    header, line = path.read_text().splitlines()
    assert header == LITERAL.splitlines()[0]
    assert line == "97|NaN|36.11|" + "NaN|" * 36 + "1|0"
    assert len(COLUMNS) == 41
    with pytest.raises(ValueError, match="Heart"):
        write_psv(path, [{"Heart": 80.0}])


def test_a_hand_written_challenge_file_parses(tmp_path: Path) -> None:
    path = tmp_path / "p000001.psv"
    path.write_text(LITERAL)
    events, outcome = load_psv(path, START)
    assert events == [
        {
            "event_id": "p000001-2",
            "patient_id": "p000001",
            "observed_at": "2026-01-01T02:00:00Z",
            "unit": "SICU",
            "source": "physionet2019",
            "heart_rate": 97.0,
            "respiratory_rate": 19.0,
            "spo2": 95.0,
            "temperature": 36.11,
            "systolic_bp": 98.0,
            "supplemental_o2": True,
        }
    ]
    assert outcome.event_at == START + 2 * H  # labelled at hour 2, clipped to the last row
    assert outcome.unit == "SICU"


def test_every_event_is_a_contract_event_with_exactly_the_files_values(tmp_path: Path) -> None:
    _, _, events = converted(tmp_path, {k: STAYS[k] for k in ("p000001", "p000002", "p000003")})
    by_id = {e["event_id"]: e for e in events}
    expected = {
        f"{stem}-{int(r['ICULOS'])}": vitals_of(r)
        for stem, rows in STAYS.items()
        if stem != "p000004"
        for r in rows
        if vitals_of(r)
    }
    assert set(by_id) == set(expected)
    for event_id, vitals in expected.items():
        event = by_id[event_id]
        obs = VitalsObservation.model_validate_json(orjson.dumps(event))
        assert {f: getattr(obs, f) for f in vitals} == vitals
        assert {k for k in event if k in VITAL_COLUMNS.values()} == set(vitals)
        assert all(type(event[f]) is float for f in vitals)
        assert event["source"] == "physionet2019"
        assert event["patient_id"] == event_id.split("-")[0]
        assert event["unit"] == ("SICU" if event["patient_id"] == "p000002" else "MICU")


def test_map_is_derived_from_sbp_and_dbp_never_read_from_the_file(tmp_path: Path) -> None:
    out, _, events = converted(tmp_path)
    assert not any("MAP" in e or "mean_arterial_pressure" in e for e in events)
    first = read_vitals(out)["p000001"][0]
    assert first.vitals[6] == pytest.approx((121 + 2 * 77) / 3)  # the file said 50


def test_supplemental_oxygen_follows_fio2_as_fraction_or_percentage(tmp_path: Path) -> None:
    _, _, events = converted(tmp_path)
    o2 = {e["event_id"]: e.get("supplemental_o2") for e in events if e["patient_id"] == "p000001"}
    # hour 3 (labs only) and hour 4 (FiO2 only) carry no vital, so are no event
    assert o2 == {
        "p000001-1": None,
        "p000001-2": True,
        "p000001-5": False,
        "p000001-6": True,
        "p000001-7": False,
    }


def test_out_of_range_values_are_dropped_not_clipped_and_counted(tmp_path: Path) -> None:
    _, info, events = converted(tmp_path)
    odd = {e["event_id"]: e for e in events if e["patient_id"] == "p000004"}
    kept = {k: {f: v for f, v in e.items() if f in VITAL_COLUMNS.values()} for k, e in odd.items()}
    assert kept == {
        "p000004-2": {"spo2": 40.0, "respiratory_rate": 0.0},
        "p000004-3": {"temperature": 45.0, "diastolic_bp": 300.0},
        "p000004-4": {"heart_rate": 300.0},
    }
    assert "supplemental_o2" not in odd["p000004-4"]  # FiO2 0 is no measurement
    assert info["out_of_range"] == {
        "HR": 2,
        "Resp": 1,
        "O2Sat": 2,
        "Temp": 2,
        "SBP": 1,
        "DBP": 0,
        "FiO2": 2,
    }
    assert info["rows"] == sum(len(rows) for rows in STAYS.values())
    assert info["rows_without_vitals"] == 3  # p000001 hours 3 and 4, p000004 hour 5
    assert info["vitals_events"] == len(events) == info["rows"] - 3


def test_times_are_admission_plus_iculos_hours_and_admissions_are_staggered(
    tmp_path: Path,
) -> None:
    out, info, events = converted(tmp_path)
    admitted = {stem: START + i * STAGGER for i, stem in enumerate(sorted(STAYS))}
    for event in events:
        hour = int(event["event_id"].rsplit("-", 1)[1])
        at = datetime.fromisoformat(event["observed_at"])
        assert at == admitted[event["patient_id"]] + hour * H
        assert event["observed_at"].endswith("Z")
    assert {o.patient_id: o.admitted_at for o in read_outcomes(out)} == admitted
    assert info["start"] == "2026-01-01T00:00:00Z"
    assert {k: info[k] for k in ("source", "files")} == {"source": "physionet2019", "files": 4}
    assert info["folder"] == str(tmp_path / "psv")


def test_outcomes_put_sepsis_onset_six_hours_after_the_first_label(tmp_path: Path) -> None:
    out, info, _ = converted(tmp_path)
    outcomes = {o.patient_id: o for o in read_outcomes(out)}
    admitted = {stem: START + i * STAGGER for i, stem in enumerate(sorted(STAYS))}

    calm = outcomes["p000001"]
    assert calm.event_at is calm.event_kind is calm.syndrome is calm.baseline is None
    assert calm.discharged_at == admitted["p000001"] + 7 * H  # last row
    assert calm.unit == "MICU"

    septic = outcomes["p000002"]
    assert septic.event_at == admitted["p000002"] + (4 + 6) * H
    assert septic.discharged_at == septic.event_at  # before the last row (hour 12)
    assert (septic.event_kind, septic.syndrome, septic.unit) == ("sepsis", "sepsis", "SICU")

    short = outcomes["p000003"]
    assert short.event_at == short.discharged_at == admitted["p000003"] + 5 * H  # not 3 + 6
    assert outcomes["p000004"].event_at is None
    assert info["deterioration_events"] == 2


def test_events_of_all_stays_are_merged_in_time_order(tmp_path: Path) -> None:
    _, _, events = converted(tmp_path)
    times = [datetime.fromisoformat(e["observed_at"]) for e in events]
    assert times == sorted(times)
    patients = [e["patient_id"] for e in events]
    switches = sum(a != b for a, b in itertools.pairwise(patients))
    assert switches > len(STAYS)  # interleaved, not one stay after another


def test_merge_matches_a_full_sort_over_many_overlapping_stays(tmp_path: Path) -> None:
    rng = random.Random(4)
    stays = {}
    for i in range(40):
        first = rng.randint(0, 30)
        hours = sorted(rng.sample(range(first, first + 80), rng.randint(1, 60)))
        stays[f"p{i:06d}"] = [row(h, HR=float(rng.randint(50, 140))) for h in hours]
    _, _, events = converted(tmp_path, stays)
    folder = tmp_path / "psv"
    everything = []
    for index, stem in enumerate(sorted(stays)):
        stay_events, _ = load_psv(folder / f"{stem}.psv", START + index * STAGGER)
        everything += [(datetime.fromisoformat(e["observed_at"]), index, e) for e in stay_events]
    everything.sort(key=lambda t: (t[0], t[1]))
    assert events == [e for _, _, e in everything]


def test_events_convert_back_to_the_files_vitals_columns(tmp_path: Path) -> None:
    stays = {k: STAYS[k] for k in ("p000001", "p000002", "p000003")}
    _, _, events = converted(tmp_path, stays)
    for stem, rows in stays.items():
        back = {
            int(e["event_id"].rsplit("-", 1)[1]): back_to_psv(e)
            for e in events
            if e["patient_id"] == stem
        }
        original = {
            int(r["ICULOS"]): {c: r.get(c) for c in VITAL_COLUMNS} for r in rows if vitals_of(r)
        }
        assert back == original
        path = tmp_path / f"{stem}-back.psv"
        write_psv(path, [{"ICULOS": float(h), **v} for h, v in back.items()])
        again, _ = load_psv(path, START)
        assert [back_to_psv(e) for e in again] == list(original.values())


def test_conversion_is_reproducible(tmp_path: Path) -> None:
    folder = make_folder(tmp_path, STAYS)
    first = convert(folder, tmp_path / "a", start=START)
    second = convert(folder, tmp_path / "b", start=START)
    later = convert(folder, tmp_path / "c", start=START + H)
    assert first["sha256"] == second["sha256"]
    assert later["sha256"]["vitals.jsonl"] != first["sha256"]["vitals.jsonl"]
    assert read_info(tmp_path / "a") == first


@pytest.mark.parametrize(
    ("header", "message"),
    [
        ("Heart" + "|".join(("", *COLUMNS[1:])), "column 1 is 'Heart', expected 'HR'"),
        ("|".join(COLUMNS[:-1]), "column 41 is missing, expected 'SepsisLabel'"),
        ("|".join((*COLUMNS, "Extra")), "column 42 is 'Extra'"),
        ("|".join(c.lower() for c in COLUMNS), "column 1 is 'hr', expected 'HR'"),
    ],
)
def test_a_wrong_header_names_the_file_and_the_first_wrong_column(
    tmp_path: Path, header: str, message: str
) -> None:
    path = tmp_path / "p000001.psv"
    path.write_text(header + "\n" + LITERAL.splitlines()[2] + "\n")
    with pytest.raises(ValueError, match=f"p000001.psv: .*{message}"):
        load_psv(path, START)


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        ([row(2, HR=80.0), row(2, HR=81.0)], "ICULOS is 2.0"),
        ([row(1, HR=80.0), {**row(2), "ICULOS": 2.5}], "ICULOS is 2.5"),
        ([], "no rows"),
    ],
)
def test_malformed_stays_are_refused(tmp_path: Path, rows: list[dict], message: str) -> None:
    path = tmp_path / "p000001.psv"
    write_psv(path, rows)
    with pytest.raises(ValueError, match=message):
        load_psv(path, START)


def test_a_row_with_a_missing_field_or_text_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "p000001.psv"
    header, _, good = LITERAL.splitlines()
    path.write_text(f"{header}\n{good.rsplit('|', 1)[0]}\n")
    with pytest.raises(ValueError, match=r"p000001.psv:2: 40 fields, expected 41"):
        load_psv(path, START)
    path.write_text(f"{header}\n{good.replace('97', 'high', 1)}\n")
    with pytest.raises(ValueError, match=r"p000001.psv:2: HR is 'high'"):
        load_psv(path, START)


def test_events_are_in_the_log_as_given_to_the_replay(tmp_path: Path) -> None:
    out, _, events = converted(tmp_path)
    samples = read_vitals(out)
    assert sum(len(s) for s in samples.values()) == len(events)
    assert [s.event_id for s in samples["p000002"]] == [f"p000002-{h}" for h in range(1, 13)]
