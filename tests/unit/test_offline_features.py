"""`features.offline.feature_rows` equals the plain reference at every cut.

Row i must be `reference.compute` of the log filtered to the cut, for shuffled logs with
redeliveries (some carrying a different observed time), missing values, ties in time,
late events and cuts anywhere: before the first sample, on one, between two, after all.
"""

from __future__ import annotations

import math
import random
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from features import reference
from features.offline import feature_rows
from features.samples import VitalsSample, to_us
from features.windows import FEATURE_NAMES, HOUR_US
from streams.events import VitalsObservation
from tests.strategies import observation_fields

BASE = datetime(2026, 11, 22, 8, 0, tzinfo=UTC)
SECOND_US = 1_000_000


def _sample(eid: str, minutes: float, **fields: object) -> VitalsSample:
    obs = VitalsObservation(
        event_id=eid, patient_id="p", observed_at=BASE + timedelta(minutes=minutes), **fields
    )
    return VitalsSample.from_event(obs)


def _us(minutes: float) -> int:
    return to_us(BASE + timedelta(minutes=minutes))


def _matches(name: str, got: float, expected: float | None) -> bool:
    if expected is None:
        return math.isnan(got)
    if "_count_" in name:
        return got == expected
    return math.isclose(got, expected, rel_tol=1e-6, abs_tol=1e-9)


def assert_rows_match_reference(
    log: list[VitalsSample], cuts: list[int], news2_lookback_h: float = 4.0
) -> None:
    rows = feature_rows(log, cuts, news2_lookback_h)
    assert rows.as_of_us.shape == (len(cuts),)
    assert rows.values.shape == (len(cuts), len(FEATURE_NAMES))
    assert len(rows.news2) == len(cuts)
    for i, cut in enumerate(cuts):
        visible = [s for s in log if s.observed_us <= cut]
        if not visible:
            assert rows.as_of_us[i] == -1
            assert np.isnan(rows.values[i]).all()
            assert rows.news2[i] is None
            continue
        as_of, expected, inputs = reference.compute(visible, news2_lookback_h)
        assert rows.as_of_us[i] == as_of, cut
        wrong = {
            name: (float(rows.values[i, j]), expected[name])
            for j, name in enumerate(FEATURE_NAMES)
            if not _matches(name, float(rows.values[i, j]), expected[name])
        }
        assert not wrong, (cut, wrong)
        assert rows.news2[i] == inputs, cut


@st.composite
def event_logs(draw: st.DrawFn) -> list[VitalsSample]:
    """Events in random order, then redeliveries: exact copies and diverging ones."""
    n = draw(st.integers(min_value=1, max_value=40))
    span_min = draw(st.sampled_from([30, 300, 1500, 3000]))  # some logs exceed 24 h
    log = []
    for i in range(n):
        # whole seconds, with ties: equal timestamps must be handled too
        seconds = draw(st.integers(0, span_min * 60))
        log.append(
            _sample(
                f"e{i}",
                seconds / 60,
                **draw(observation_fields()),
            )
        )
    redeliveries = draw(
        st.lists(
            st.tuples(st.integers(0, n - 1), st.sampled_from([0, 0, -3600, -60, -1, 1, 7200])),
            max_size=n,
        )
    )
    for i, shift_s in redeliveries:
        original = log[i]
        # A diverging copy also carries other values, so taking the wrong copy shows.
        log.append(
            original
            if shift_s == 0
            else replace(
                original,
                observed_us=original.observed_us + shift_s * SECOND_US,
                vitals=tuple(None if v is None else v + 1 for v in original.vitals),
            )
        )
    return draw(st.permutations(log))


@st.composite
def cut_lists(draw: st.DrawFn, log: list[VitalsSample]) -> list[int]:
    """Unsorted cuts with repeats: on, just around and between samples, before and after."""
    times = sorted({s.observed_us for s in log})
    offsets = [-SECOND_US, -1, 0, 0, 1, SECOND_US // 2]
    near = st.builds(lambda t, d: t + d, st.sampled_from(times), st.sampled_from(offsets))
    anywhere = st.integers(times[0] - HOUR_US, times[-1] + HOUR_US)
    edges = st.sampled_from([times[0] - 1, times[-1], times[-1] + 30 * HOUR_US])
    return draw(st.lists(st.one_of(near, anywhere, edges), min_size=1, max_size=12))


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), news2_lookback_h=st.sampled_from([4.0, 0.5, 2.3, 30.0]))
def test_rows_equal_reference_at_random_cuts(data, news2_lookback_h) -> None:
    log = data.draw(event_logs())
    cuts = data.draw(cut_lists(log))
    assert_rows_match_reference(log, cuts, news2_lookback_h)


def test_cuts_may_be_a_numpy_array_in_any_order() -> None:
    log = [_sample(f"e{m}", m, heart_rate=60.0 + m / 2) for m in range(0, 300, 7)]
    cuts = [_us(200), _us(-5), _us(14), _us(200), _us(299.5)]
    rows = feature_rows(log, np.array(cuts, dtype=np.int64))
    assert rows.as_of_us.tolist() == [_us(196), -1, _us(14), _us(196), _us(294)]
    assert_rows_match_reference(log, cuts)


def test_no_samples_and_no_cuts_give_empty_rows() -> None:
    rows = feature_rows([], [_us(0), _us(60)])
    assert rows.as_of_us.tolist() == [-1, -1] and rows.news2 == [None, None]
    assert rows.values.shape == (2, len(FEATURE_NAMES)) and np.isnan(rows.values).all()
    rows = feature_rows([_sample("e", 0, heart_rate=80.0)], [])
    assert rows.as_of_us.shape == (0,) and rows.values.shape == (0, len(FEATURE_NAMES))


def test_equal_observed_times_break_ties_by_event_id() -> None:
    # Log order b, c, a: neither arrival order nor a stable sort by time picks "c".
    log = [
        _sample("b", 10, heart_rate=100.0, respiratory_rate=20.0, spo2=95.0, spo2_scale=2),
        _sample("c", 10, heart_rate=110.0),
        _sample("a", 10, heart_rate=90.0, respiratory_rate=12.0, spo2=97.0, temperature=37.0),
        _sample("b", 10, heart_rate=50.0),  # redelivery with other content: first one wins
    ]
    cut = _us(10)
    rows = feature_rows(log, [cut])
    value = dict(zip(FEATURE_NAMES, rows.values[0].tolist(), strict=True))
    assert rows.as_of_us[0] == cut
    assert value["hr_last_1h"] == 110.0
    assert value["hr_count_24h"] == 3.0 and value["hr_mean_6h"] == 100.0
    assert value["rr_last_1h"] == 20.0
    assert math.isnan(value["hr_slope_1h"])  # three samples, but no time spread
    news2 = rows.news2[0]
    assert news2 is not None
    assert (news2.heart_rate, news2.respiratory_rate) == (110.0, 20.0)
    assert (news2.spo2, news2.spo2_scale, news2.temperature) == (95.0, 2, 37.0)
    assert_rows_match_reference(log, [cut, cut - 1, cut + HOUR_US])


def test_redelivery_observed_earlier_is_what_earlier_cuts_see() -> None:
    # Filtering by the cut happens before "first delivery wins": before minute 30 only the
    # redelivered copy is in the filtered log, after it the first delivery wins again.
    log = [_sample("x", 30, heart_rate=100.0), _sample("x", 10, heart_rate=60.0)]
    cuts = [_us(5), _us(20), _us(40)]
    rows = feature_rows(log, cuts)
    assert rows.as_of_us.tolist() == [-1, _us(10), _us(30)]
    hr_last = FEATURE_NAMES.index("hr_last_1h")
    hr_count = FEATURE_NAMES.index("hr_count_24h")
    assert rows.values[1, hr_last] == 60.0
    assert rows.values[2, hr_last] == 100.0 and rows.values[2, hr_count] == 1.0
    assert_rows_match_reference(log, cuts)


def test_news2_lookback_is_inclusive_after_truncating_to_microseconds() -> None:
    log = [
        _sample("now", 240, spo2=97.0),
        _sample("four-hours", 0, temperature=39.5),
        replace(_sample("too-old", 0, respiratory_rate=30.0), observed_us=_us(0) - 1),
        _sample("2h18", 102, heart_rate=90.0),
        replace(_sample("just-inside", 102, consciousness="V"), observed_us=_us(102) + 1),
    ]
    cut = _us(240)
    rows = feature_rows(log, [cut], news2_lookback_h=4.0)
    news2 = rows.news2[0]
    assert news2 is not None
    assert (news2.temperature, news2.respiratory_rate, news2.heart_rate) == (39.5, None, 90.0)
    # 2.3 * HOUR_US is 8279999999.999999, truncated: a value exactly 2 h 18 min old is out.
    rows = feature_rows(log, [cut], news2_lookback_h=2.3)
    news2 = rows.news2[0]
    assert news2 is not None
    assert (news2.heart_rate, news2.consciousness, news2.temperature) == (None, "V", None)
    assert_rows_match_reference(log, [cut], news2_lookback_h=4.0)
    assert_rows_match_reference(log, [cut], news2_lookback_h=2.3)


def _stay(days: int, seed: int) -> list[VitalsSample]:
    """A monitor row a minute (BP every 30 min, ~5 % gaps), a manual set every 4 h."""
    rng = random.Random(seed)
    hr, rr, spo2, temp = 80.0, 16.0, 97.0, 36.8
    log = []
    for minute in range(days * 24 * 60):
        hr = min(180.0, max(40.0, hr + rng.gauss(0, 1.5)))
        rr = min(40.0, max(6.0, rr + rng.gauss(0, 0.3)))
        spo2 = min(100.0, max(80.0, spo2 + rng.gauss(0, 0.3)))
        temp = min(41.0, max(34.0, temp + rng.gauss(0, 0.05)))
        fields: dict[str, object] = {
            "heart_rate": round(hr, 1),
            "respiratory_rate": round(rr, 1),
            "spo2": float(round(spo2)),
        }
        if minute % 30 == 0:
            fields["systolic_bp"] = float(round(rng.gauss(125, 12)))
            fields["diastolic_bp"] = float(round(rng.gauss(75, 7)))
        if minute % 240 == 0:
            fields["temperature"] = round(temp, 1)
            fields["consciousness"] = "A"
        fields = {k: v for k, v in fields.items() if rng.random() >= 0.05} or {"heart_rate": hr}
        if "spo2" in fields:
            fields["supplemental_o2"] = rng.random() < 0.2
        log.append(_sample(f"e{minute}", minute + rng.randint(0, 59) / 60, **fields))
    return log


def test_three_day_stay_equals_reference_at_a_few_cuts() -> None:
    log = _stay(days=3, seed=7)
    log = log[:2000] + log[2100:] + log[2000:2100] + log[4000:4010]  # late, then redelivered
    first, last = log[0].observed_us, max(s.observed_us for s in log)
    cuts = [
        last + HOUR_US,
        first - 1,
        first + HOUR_US // 2,
        first + 12 * HOUR_US + 17 * SECOND_US,
        log[3000].observed_us,
        first + 47 * HOUR_US,
        first + 47 * HOUR_US,
        last,
        *(first + hours * HOUR_US for hours in range(6, 72, 9)),  # several gathered blocks
    ]
    rows = feature_rows(log, cuts)
    day = [j for j, name in enumerate(FEATURE_NAMES) if name.endswith("_24h")]
    assert not np.isnan(rows.values[0, day]).any()  # a day of data fills every 24 h feature
    assert_rows_match_reference(log, cuts)
