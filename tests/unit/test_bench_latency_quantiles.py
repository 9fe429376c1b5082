"""The bench's reading of workers' latency histograms (`bench.workers.histogram_quantiles`)."""

from __future__ import annotations

import math

import pytest

from bench.workers import Worker, histogram_quantiles, summed_buckets

METRICS = """# TYPE vigil_event_latency_seconds histogram
vigil_event_latency_seconds_bucket{le="0.1",topic="t"} 10.0
vigil_event_latency_seconds_bucket{le="0.25",topic="t"} 90.0
vigil_event_latency_seconds_bucket{le="0.5",topic="t"} 99.0
vigil_event_latency_seconds_bucket{le="+Inf",topic="t"} 100.0
vigil_event_latency_seconds_count{topic="t"} 100.0
vigil_event_latency_seconds_sum{topic="t"} 20.0
"""


class Scraped(Worker):
    def __init__(self, text: str) -> None:
        self.text = text

    def metrics(self) -> str:
        return self.text


def test_quantiles_interpolate_inside_buckets_as_prometheus_does() -> None:
    p50, p95 = histogram_quantiles(Scraped(METRICS).latency_buckets("t"), (0.5, 0.95))
    assert p50 == pytest.approx(0.1 + 0.15 * 40 / 80)
    assert p95 == pytest.approx(0.25 + 0.25 * 5 / 9)


def test_a_quantile_in_the_open_bucket_is_its_lower_edge_and_an_unseen_topic_nan() -> None:
    assert histogram_quantiles(Scraped(METRICS).latency_buckets("t"), (0.999,)) == [0.5]
    assert math.isnan(histogram_quantiles(Scraped(METRICS).latency_buckets("other"), (0.5,))[0])


def test_quantiles_since_an_earlier_reading_leave_its_observations_out() -> None:
    earlier = [(0.1, 10.0), (0.25, 10.0), (0.5, 10.0), (math.inf, 10.0)]
    # what is left: 80 observations in (0.1, 0.25], 9 in (0.25, 0.5], 1 above
    (p50,) = histogram_quantiles(Scraped(METRICS).latency_buckets("t"), (0.5,), since=earlier)
    assert p50 == pytest.approx(0.1 + 0.15 * 45 / 80)


def test_workers_histograms_add_up_before_their_quantiles() -> None:
    # a second worker with 100 observations, all under 0.1 s
    fast = METRICS.replace("} 90.0", "} 100.0").replace("} 99.0", "} 100.0")
    fast = fast.replace('le="0.1",topic="t"} 10.0', 'le="0.1",topic="t"} 100.0')
    summed = summed_buckets([Scraped(METRICS), Scraped(fast)], "t")
    assert summed == [(0.1, 110.0), (0.25, 190.0), (0.5, 199.0), (math.inf, 200.0)]
    (p50,) = histogram_quantiles(summed, (0.5,))
    assert p50 == pytest.approx(0.1 * 100 / 110)
