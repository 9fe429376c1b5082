from pathlib import Path

import pytest

from bench.profile import stage_shares


def test_samples_go_to_the_first_stage_on_their_stack(tmp_path: Path) -> None:
    raw = tmp_path / "profile.txt"
    raw.write_text(
        "run (cli.py:1);Worker.handle (app.py:2);PatientScorer.score (scoring.py:3);"
        "vitals_scores (risk.py:4);VitalsModel.predict (vitals_model.py:5) 6\n"
        "run (cli.py:1);Worker.handle (app.py:2);PatientScorer.score (scoring.py:3) 2\n"
        "run (cli.py:1);Agent._execute_actor (agent.py:9);Stream.take_events (streams.py:1) 1\n"
        "run (cli.py:1);BaseEventLoop._run_once (base_events.py:1) 1\n"
    )
    shares = dict(stage_shares(raw))
    assert shares == pytest.approx(
        {
            "vitals model: inputs, TreeSHAP, contributors": 0.6,
            "rest of scoring": 0.2,
            "Faust and aiokafka: fetch, stream, commit": 0.1,
            "event loop and other": 0.1,
        }
    )
