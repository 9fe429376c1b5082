"""Alert policy: thresholds with hysteresis, suppression, escalation, clearing, wording."""

from __future__ import annotations

from dataclasses import fields
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from features.news2 import News2Inputs
from models.vitals_model import MODEL_FEATURES
from streams.alerts import DEFAULT_POLICY, AlertPolicy, AlertState, decide, level_for, reason
from streams.events import Contributor, News2Result, RiskScore, Scores, Trigger

POLICY = AlertPolicy.load()
T0 = datetime(2026, 11, 22, 8, 0, tzinfo=UTC)
QUIET = {
    "respiratory_rate": 0, "spo2": 0, "supplemental_o2": 0, "systolic_bp": 0,
    "heart_rate": 0, "consciousness": 0, "temperature": 0,
}  # fmt: skip


def risk(fused: float, minutes: float, band: str = "low", **components: int) -> RiskScore:
    comps = {**QUIET, **components}
    return RiskScore(
        patient_id="p-1",
        scored_at=T0 + timedelta(minutes=minutes, seconds=1),
        as_of=T0 + timedelta(minutes=minutes),
        trigger=Trigger(topic="vitals.v1", event_id=f"e{minutes}"),
        news2=News2Result(
            total=sum(comps.values()),
            band=band,
            single_param_3=3 in comps.values(),
            components=comps,
            missing=[],
        ),
        scores=Scores(vitals=fused, fused=fused),
        risk_level="low",
        contributors=[
            Contributor(feature=f"news2_{k}", value=v, contribution=float(p))
            for k, v, p in [
                ("respiratory_rate", 26.0, components.get("respiratory_rate", 0)),
                ("temperature", 39.4, components.get("temperature", 0)),
                ("heart_rate", 118.0, components.get("heart_rate", 0)),
            ]
            if p
        ],
    )


def run(steps: list[RiskScore], state: AlertState | None = None) -> tuple[AlertState, list]:
    state = state or AlertState()
    alerts = []
    for r in steps:
        state, alert, _ = decide(POLICY, state, r, "site.", "ward-1", r.scored_at)
        alerts.append(alert)
    return state, alerts


def kinds(alerts: list) -> list[tuple[str, str] | None]:
    return [(a.kind, a.level) if a else None for a in alerts]


def test_raises_at_the_upper_threshold_only() -> None:
    _, alerts = run([risk(0.29, 0), risk(0.30, 5)])
    assert kinds(alerts) == [None, ("raised", "medium")]


def test_hysteresis_holds_the_level_until_the_lower_threshold() -> None:
    state, alerts = run([risk(0.35, 0), risk(0.25, 5), risk(0.31, 10), risk(0.21, 15)])
    assert kinds(alerts) == [("raised", "medium"), None, None, None]
    assert state.level == "medium" and state.low_since_us is None
    state, _ = run([risk(0.19, 20)], state)
    assert state.level == "low" and state.alerted == "medium"


def test_cleared_only_after_the_dwell_time_at_low() -> None:
    _, alerts = run([risk(0.4, 0), risk(0.1, 10), risk(0.1, 40), risk(0.1, 69), risk(0.1, 70)])
    assert kinds(alerts) == [("raised", "medium"), None, None, None, ("cleared", "low")]
    cleared = alerts[-1]
    assert cleared.previous_level == "medium"
    assert "Back to low risk for 60 min" in cleared.reason


def test_a_bounce_during_the_dwell_keeps_the_episode_open() -> None:
    state, alerts = run([risk(0.4, 0), risk(0.1, 10), risk(0.35, 40), risk(0.1, 50)])
    assert kinds(alerts) == [("raised", "medium"), None, None, None]
    _, alerts = run([risk(0.1, 100), risk(0.1, 111)], state)
    assert kinds(alerts) == [None, ("cleared", "low")]  # 60 min from minute 50


def test_escalation_is_immediate_and_never_suppressed() -> None:
    state, alerts = run([risk(0.35, 0), risk(0.65, 1), risk(0.95, 2)])
    assert kinds(alerts) == [("raised", "medium"), ("escalated", "high"), ("escalated", "critical")]
    assert alerts[1].previous_level == "medium" and alerts[2].previous_level == "high"
    assert len({a.alert_id for a in alerts}) == 3
    assert state.episode == int((T0 - datetime(1970, 1, 1, tzinfo=UTC)).total_seconds() * 1e6)


def test_de_escalation_within_an_episode_is_silent() -> None:
    _, alerts = run([risk(0.7, 0), risk(0.35, 5), risk(0.7, 10)])
    assert kinds(alerts) == [("raised", "high"), None, None]


def test_same_level_is_suppressed_within_the_window_after_a_clear() -> None:
    state, alerts = run([risk(0.4, 0), risk(0.1, 5), risk(0.1, 65)])
    assert kinds(alerts) == [("raised", "medium"), None, ("cleared", "low")]
    # 20 min after the clear: inside the 30 min window, the episode opens without a page
    quiet, again = run([risk(0.4, 85)], state)
    assert kinds(again) == [None]
    assert quiet.alerted == "medium" and quiet.episode > state.episode
    # a higher level is an escalation of that episode and pages at once
    _, up = run([risk(0.7, 86)], quiet)
    assert kinds(up) == [("escalated", "high")]
    # 31 min after the clear the same level pages again, with a new episode's id
    later, paged = run([risk(0.4, 96)], state)
    assert kinds(paged) == [("raised", "medium")]
    assert later.episode > state.episode and paged[0].alert_id != alerts[0].alert_id


def test_news2_sets_a_floor_under_the_model_score() -> None:
    assert level_for(POLICY, 0.05, risk(0.05, 0, band="high").news2) == "high"
    assert level_for(POLICY, 0.05, risk(0.05, 0, band="low-medium").news2) == "medium"
    assert level_for(POLICY, 0.05, risk(0.05, 0, band="medium").news2) == "medium"
    assert level_for(POLICY, 0.95, risk(0.95, 0, band="medium").news2) == "critical"
    _, alerts = run([risk(0.05, 0, band="high", respiratory_rate=3, heart_rate=2, temperature=2)])
    assert kinds(alerts) == [("raised", "high")]


def test_alert_ids_are_deterministic_per_patient_episode_and_level() -> None:
    steps = [risk(0.35, 0), risk(0.65, 1)]
    _, first = run(steps)
    _, second = run(steps)
    assert [a.alert_id for a in first] == [a.alert_id for a in second]
    other_site = decide(POLICY, AlertState(), steps[0], "other.", None, T0)[1]
    assert other_site is not None and other_site.alert_id != first[0].alert_id


def test_reason_names_the_drivers_and_action_follows_the_protocol() -> None:
    _, alerts = run([risk(0.7, 0, respiratory_rate=3, heart_rate=2)])
    alert = alerts[0]
    assert alert.reason.startswith("NEWS2 5 (low), risk 0.70: ")
    assert "respiratory rate 26/min" in alert.reason and "heart rate 118/min" in alert.reason
    assert alert.recommended_action == POLICY.recommended_actions["high"]
    assert alert.unit == "ward-1" and alert.risk.risk_level == "high"


def test_infection_pattern_adds_the_sepsis_prompt() -> None:
    _, alerts = run([risk(0.7, 0, temperature=2, heart_rate=2)])
    assert alerts[0].recommended_action.endswith(POLICY.sepsis_prompt)
    _, alerts = run([risk(0.7, 0, respiratory_rate=3, heart_rate=2)])
    assert POLICY.sepsis_prompt not in alerts[0].recommended_action


def test_state_round_trips_through_json() -> None:
    state, _ = run([risk(0.7, 0)])
    assert AlertState.from_json(state.to_json()) == state
    assert AlertState.from_json(None) == AlertState()


def test_a_site_policy_file_is_validated(tmp_path: Path) -> None:
    raw = yaml.safe_load(DEFAULT_POLICY.read_text())
    raw["levels"]["high"] = {"raise": 0.5, "clear": 0.7}
    bad = tmp_path / "policy.yaml"
    bad.write_text(yaml.safe_dump(raw))
    with pytest.raises(ValidationError, match="clear"):
        AlertPolicy.load(bad)
    raw["levels"]["high"] = {"raise": 0.7, "clear": 0.6}
    raw["recommended_actions"]["high"] = "Call the outreach team on 2222."
    good = tmp_path / "site.yaml"
    good.write_text(yaml.safe_dump(raw))
    site = AlertPolicy.load(good)
    assert site.levels["high"].raise_at == 0.7
    assert site.recommended_actions["high"] == "Call the outreach team on 2222."


def test_reason_words_model_contributors_and_names_only_those_raising_risk() -> None:
    score = risk(0.7, 0)
    score.contributors = [
        Contributor(feature="spo2_scale", value=2.0, contribution=-0.9),
        Contributor(feature="rr_slope_6h", value=1.8, contribution=0.6),
        Contributor(feature="hr_mean_1h_vs_mean_24h", value=22.4, contribution=0.4),
        Contributor(feature="spo2_last_1h_vs_mean_24h", value=-3.2, contribution=0.3),
        Contributor(feature="news2_supplemental_o2", value=0.0, contribution=0.2),
    ]
    text = reason(score)
    assert text == (
        "NEWS2 0 (low), risk 0.70: respiratory rate trend over 6h +1.8/min per hour, "
        "heart rate 1h mean 22.4/min above its 24 h mean, SpO2 latest 3.2 % below its 24 h mean."
    )
    score.contributors = [Contributor(feature="news2_supplemental_o2", value=0.0, contribution=1)]
    assert reason(score).endswith(": on room air.")


_FEATURES = [*MODEL_FEATURES, *(f"news2_{f.name}" for f in fields(News2Inputs)), "news2_total"]


@given(
    st.lists(
        st.builds(
            Contributor,
            feature=st.sampled_from(_FEATURES),
            value=st.none() | st.floats(-1e6, 1e6),
            contribution=st.floats(0.01, 5),
        )
        | st.builds(
            Contributor,
            feature=st.just("news2_consciousness"),
            value=st.none() | st.sampled_from(["A", "C", "V", "P", "U"]),
            contribution=st.floats(0.01, 5),
        ),
        max_size=5,
    )
)
def test_reason_words_any_contributor_even_an_unmeasured_one(contributors) -> None:
    score = risk(0.7, 0)
    score.contributors = contributors
    text = reason(score)
    assert text.startswith("NEWS2 0 (low), risk 0.70") and text.endswith(".")


def test_reason_says_each_driver_once_and_fills_up_to_three() -> None:
    score = risk(0.7, 0)
    score.contributors = [
        Contributor(feature="news2_heart_rate", value=135.0, contribution=0.9),
        Contributor(feature="hr_last_1h", value=135.0, contribution=0.5),
        Contributor(feature="news2_total", value=5.0, contribution=0.4),
        Contributor(feature="hr_last_6h", value=135.0, contribution=0.3),
        Contributor(feature="rr_slope_6h", value=1.8, contribution=0.2),
    ]
    assert reason(score).endswith(
        ": heart rate 135/min, NEWS2 total 5, respiratory rate trend over 6h +1.8/min per hour."
    )


def test_reason_says_an_unmeasured_vital_was_not_recorded() -> None:
    score = risk(0.7, 0)
    score.contributors = [
        Contributor(feature="news2_temperature", value=None, contribution=0.5),
        Contributor(feature="temp_mean_6h", value=None, contribution=0.2),
    ]
    assert reason(score).endswith(": temperature not recorded, no temperature readings in 6h.")
