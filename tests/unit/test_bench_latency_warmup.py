"""The latency stage measures only events sent after its warm-up (`bench/latency.py`)."""

from __future__ import annotations

import pytest

from bench.feed import Record
from bench.latency import ScoreTracker, _summary


def _score(patient: str, trigger: str) -> dict:
    return {"patient_id": patient, "trigger": {"event_id": trigger}, "model_versions": {}}


def test_events_sent_in_the_warm_up_are_reported_apart(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = iter([100.0, 101.0, 105.0, 106.0])
    monkeypatch.setattr("bench.latency.time.time", lambda: next(clock))
    tracker = ScoreTracker(measured_from=105.0)
    for i in range(4):
        tracker.sent(Record(b"p", b"{}", f"e{i}"))
    tracker.scored(_score("p", "e1"), appeared_ms=101_900)  # covers e0 (1.9 s), e1 (0.9 s)
    tracker.scored(_score("p", "e3"), appeared_ms=106_300)  # covers e2 (1.3 s), e3 (0.3 s)

    level = _summary(tracker, 0.5, 10.0, 1, 7.0, 5.0, {}, [0.1, 0.2])

    assert (level.sent, level.scored_events, level.scores) == (2, 2, 1)
    assert level.p50_ms == pytest.approx(800.0)  # of 1,300 and 300 only
    assert level.max_ms == pytest.approx(1300.0)
    assert level.warmup_p50_ms == pytest.approx(1400.0)  # of 1,900 and 900
    assert level.unscored_events == 0
