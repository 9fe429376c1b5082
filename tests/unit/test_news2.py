"""NEWS2 against the RCP 2017 chart: every band edge of every parameter."""

from __future__ import annotations

import pytest

from features.news2 import News2Inputs, news2, score_spo2

FULL_NORMAL = dict(
    respiratory_rate=16.0, spo2=97.0, supplemental_o2=False, systolic_bp=120.0,
    heart_rate=70.0, consciousness="A", temperature=37.0,
)  # fmt: skip


def component(name: str, value: object, **extra: object) -> int:
    inputs = News2Inputs(**{**FULL_NORMAL, name: value, **extra})  # type: ignore[arg-type]
    return news2(inputs).components[name]


@pytest.mark.parametrize(
    ("value", "points"),
    [(0, 3), (8, 3), (8.1, 1), (9, 1), (11, 1), (11.1, 0), (12, 0), (20, 0), (20.1, 2),
     (21, 2), (24, 2), (24.1, 3), (25, 3), (60, 3)],
)  # fmt: skip
def test_respiratory_rate(value: float, points: int) -> None:
    assert component("respiratory_rate", value) == points


@pytest.mark.parametrize(
    ("value", "points"),
    [(40, 3), (91, 3), (91.5, 2), (92, 2), (93, 2), (93.5, 1), (94, 1), (95, 1), (95.5, 0),
     (96, 0), (100, 0)],
)  # fmt: skip
def test_spo2_scale1(value: float, points: int) -> None:
    assert component("spo2", value) == points
    # scale 1 ignores oxygen for the SpO2 component (oxygen scores separately)
    assert component("spo2", value, supplemental_o2=True) == points


@pytest.mark.parametrize(
    ("value", "on_air", "on_o2"),
    [(80, 3, 3), (83, 3, 3), (84, 2, 2), (85, 2, 2), (86, 1, 1), (87, 1, 1), (88, 0, 0),
     (92, 0, 0), (93, 0, 1), (94, 0, 1), (95, 0, 2), (96, 0, 2), (97, 0, 3), (100, 0, 3)],
)  # fmt: skip
def test_spo2_scale2(value: float, on_air: int, on_o2: int) -> None:
    assert score_spo2(value, 2, on_oxygen=False) == on_air
    assert score_spo2(value, 2, on_oxygen=True) == on_o2
    assert component("spo2", value, spo2_scale=2, supplemental_o2=False) == on_air
    assert component("spo2", value, spo2_scale=2, supplemental_o2=True) == on_o2


@pytest.mark.parametrize(
    ("value", "points"),
    [(50, 3), (90, 3), (90.5, 2), (91, 2), (100, 2), (100.5, 1), (101, 1), (110, 1),
     (110.5, 0), (111, 0), (219, 0), (219.5, 3), (220, 3), (280, 3)],
)  # fmt: skip
def test_systolic_bp(value: float, points: int) -> None:
    assert component("systolic_bp", value) == points


@pytest.mark.parametrize(
    ("value", "points"),
    [(30, 3), (40, 3), (40.5, 1), (41, 1), (50, 1), (50.5, 0), (51, 0), (90, 0), (90.5, 1),
     (91, 1), (110, 1), (110.5, 2), (111, 2), (130, 2), (130.5, 3), (131, 3), (200, 3)],
)  # fmt: skip
def test_heart_rate(value: float, points: int) -> None:
    assert component("heart_rate", value) == points


@pytest.mark.parametrize(
    ("value", "points"),
    [(30.0, 3), (35.0, 3), (35.1, 1), (36.0, 1), (36.1, 0), (38.0, 0), (38.1, 1), (39.0, 1),
     (39.1, 2), (41.0, 2)],
)  # fmt: skip
def test_temperature(value: float, points: int) -> None:
    assert component("temperature", value) == points


@pytest.mark.parametrize(("value", "points"), [(False, 0), (True, 2)])
def test_supplemental_o2(value: bool, points: int) -> None:
    assert component("supplemental_o2", value) == points


@pytest.mark.parametrize(("value", "points"), [("A", 0), ("C", 3), ("V", 3), ("P", 3), ("U", 3)])
def test_consciousness(value: str, points: int) -> None:
    assert component("consciousness", value) == points


def test_all_normal_is_low_with_nothing_missing() -> None:
    result = news2(News2Inputs(**FULL_NORMAL))  # type: ignore[arg-type]
    assert (result.total, result.band, result.single_param_3, result.missing) == (
        0,
        "low",
        False,
        [],
    )


def test_missing_parameters_score_zero_and_are_listed() -> None:
    result = news2(News2Inputs(heart_rate=135.0))
    assert result.components["heart_rate"] == 3
    assert result.total == 3
    assert result.missing == [
        "respiratory_rate", "spo2", "supplemental_o2", "systolic_bp", "consciousness",
        "temperature",
    ]  # fmt: skip
    assert result.band == "low-medium"


@pytest.mark.parametrize(
    ("overrides", "total", "band"),
    [
        ({"heart_rate": 95.0}, 1, "low"),
        ({"heart_rate": 95.0, "respiratory_rate": 22.0, "temperature": 38.5}, 4, "low"),
        ({"consciousness": "V"}, 3, "low-medium"),
        ({"heart_rate": 115.0, "respiratory_rate": 22.0, "temperature": 38.5}, 5, "medium"),
        ({"heart_rate": 115.0, "respiratory_rate": 22.0, "supplemental_o2": True}, 6, "medium"),
        ({"heart_rate": 115.0, "respiratory_rate": 25.0, "supplemental_o2": True}, 7, "high"),
        ({"heart_rate": 135.0, "respiratory_rate": 25.0, "systolic_bp": 85.0,
          "consciousness": "U", "spo2": 88.0, "supplemental_o2": True, "temperature": 34.0},
         20, "high"),
    ],
)  # fmt: skip
def test_total_and_band(overrides: dict[str, object], total: int, band: str) -> None:
    result = news2(News2Inputs(**{**FULL_NORMAL, **overrides}))  # type: ignore[arg-type]
    assert (result.total, result.band) == (total, band)
