"""The throughput stage's paired ratios: each pair's own, the median as the headline."""

from __future__ import annotations

import statistics

from bench import report, suite


def _run(workers: int, rate: float, pair: int | None = None) -> dict:
    run = {
        "workers": workers,
        "events": 1_000,
        "scores": 100,
        "events_per_s": rate,
        "batches": {"mean_batch_events": 500.0, "mean_batch_ms": 50.0},
    }
    return run if pair is None else {**run, "pair": pair}


def _result() -> dict:
    pairs = [(10_000.0, 7_000.0), (12_000.0, 9_600.0), (11_000.0, 9_020.0)]
    return {
        "ceilings": {"faust_io_events_per_s": 9_000.0},
        "throughput": {
            "pairs": [
                {"bare_faust_events_per_s": b, "vigil_events_per_s": v, "ratio": v / b}
                for b, v in pairs
            ],
            "runs": [_run(1, v, i + 1) for i, (_, v) in enumerate(pairs)]
            + [{**_run(2, 9_900.0), "bare_faust_events_per_s": 12_000.0, "ratio": 0.825}],
            "bare_faust_events_per_s": statistics.median(b for b, _ in pairs),
            "one_worker_events_per_s": statistics.median(v for _, v in pairs),
            "ratio_1_worker_to_bare_faust": statistics.median(v / b for b, v in pairs),
        },
    }


def test_two_workers_are_compared_with_two_agents_and_the_pairs_medians() -> None:
    result = _result()
    suite._ratios(result)
    t = result["throughput"]
    assert t["ratio_2_workers_to_2_bare_faust"] == 0.825
    assert t["ratio_2_workers_to_bare_faust"] == 9_900.0 / 11_000.0
    assert t["ratio_2_workers_to_1"] == 9_900.0 / 9_020.0
    assert t["ratio_1_worker_to_faust_io"] == 9_020.0 / 9_000.0


def test_the_table_shows_every_pair_and_the_median() -> None:
    result = _result()
    suite._ratios(result)
    table = "\n".join(report.throughput_table(result))
    assert "| pair 1: bare Faust agent | 10,000 |" in table
    assert "| pair 1: Vigil, 1 worker | 7,000 | **0.700** of that bare Faust" in table
    assert "| pair 3: Vigil, 1 worker | 9,020 | **0.820** of that bare Faust" in table
    assert "| 2 bare Faust agents in one group | 12,000 | right before" in table
    assert "| Vigil, 2 workers | 9,900 | **0.825** of those agents" in table
    # the median of the pairs' 0.700, 0.800 and 0.820, not the ratio of the median rates
    # (9,020 / 11,000 = 0.820): each ratio compares runs next to each other
    assert "| Vigil 1 worker / bare Faust, median of 3 | 0.800 | |" in table


def test_the_models_table_shows_each_batch_size_of_each_model() -> None:
    result = {
        "models": {
            "vitals": {
                "model": "xgb-1",
                "shap": "tables",
                "results": [
                    {
                        "batch": 32,
                        "rows_per_s": 41_000.0,
                        "xgboost_pred_contribs_rows_per_s": 2_500.0,
                        "margin_only_rows_per_s": 90_000.0,
                    }
                ],
            },
            "notes": {
                "device": "cpu",
                "threads": 1,
                "results": [{"batch": 8, "notes_per_s": 48.25}],
            },
            "imaging": {
                "device": "cpu",
                "threads": 1,
                "max_difference_from_cpu": 0.0,
                "results": [
                    {"batch": 1, "images_per_s": 310.0},
                    {"batch": 8, "images_per_s": 520.0},
                ],
            },
        }
    }
    table = report.models_table(result)
    assert table[2:] == [
        "| vitals `xgb-1` (SHAP by tables, top 5) | 32 | 41,000 rows "
        "| XGBoost `pred_contribs` 2,500, margin only 90,000 |",
        "| notes (encoder and explanations, cpu, 1 thread) | 8 | 48.2 notes | |",
        "| images (cpu, 1 thread) | 1 | 310 images | largest difference from the CPU 0.0e+00 |",
        "| images (cpu, 1 thread) | 8 | 520 images | largest difference from the CPU 0.0e+00 |",
    ]
    result["models"]["notes"]["threads"] = 2
    assert (
        "| notes (encoder and explanations, cpu, 2 threads) | 8 |" in report.models_table(result)[3]
    )
    # without a trained vitals model the stage says so instead of a rate
    result["models"]["vitals"] = {"skipped": "no valid vitals model in /m"}
    assert report.models_table(result)[2] == "| vitals | – | – | no valid vitals model in /m |"


def _latency_run(share: float, run: int, p99: float) -> dict:
    return {
        "share": share,
        "run": run,
        "rate": share * 10_000,
        "workers": 2,
        "sent": 1_000,
        "scores": 250,
        "unscored_events": 0,
        "p50_ms": p99 / 2,
        "p95_ms": p99 - 20,
        "p99_ms": p99,
        "max_ms": p99 + 50,
        "p50_first_quarter_ms": 90.0,
        "p50_last_quarter_ms": 95.0,
        "batches": {"mean_batch_events": 500.0, "mean_batch_ms": 50.0},
    }


def test_each_latency_level_is_the_median_of_its_runs_and_every_run_is_shown() -> None:
    runs = [
        _latency_run(share, run, p99)
        for run, by_share in enumerate([(180.0, 465.0), (150.0, 289.0), (210.0, 310.0)], 1)
        for share, p99 in zip((0.25, 0.5), by_share, strict=True)
    ]
    medians = suite.latency_medians(runs)
    assert [(m["share"], m["runs"], m["p99_ms"]) for m in medians] == [
        (0.25, 3, 180.0),
        (0.5, 3, 310.0),
    ]
    assert medians[1]["p99_ms_of_each_run"] == [465.0, 289.0, 310.0]
    assert medians[1]["p50_ms"] == 155.0

    table = "\n".join(report.latency_table({"latency": {"levels": runs, "medians": medians}}))
    assert "| 50% | 5,000 | 2 | 3 | 155 | 290 | **310** | 465, 289, 310 |" in table
    assert "| 50% | 2 | 5,000 | 1,000 | 144 | 269 | 289 |" in table
    assert report.latency_table({}) == []
