"""Prometheus metrics of one worker, in a registry of its own (served at /metrics)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.events_in = Counter(
            "vigil_events_in", "Records consumed, by topic", ["topic"], registry=self.registry
        )
        self.events_out = Counter(
            "vigil_events_out", "Records published, by topic", ["topic"], registry=self.registry
        )
        self.dead_letters = Counter(
            "vigil_dead_letters",
            "Inputs sent to the dead-letter topic, by source topic and reason",
            ["topic", "reason"],
            registry=self.registry,
        )
        self.duplicates = Counter(
            "vigil_duplicate_events", "Redelivered event_ids ignored", registry=self.registry
        )
        self.dropped = Counter(
            "vigil_dropped_events",
            "Events older than as_of - 24h, which change nothing",
            registry=self.registry,
        )
        self.alerts = Counter(
            "vigil_alerts",
            "Alerts published, by level and kind (re-publications after a crash included)",
            ["level", "kind"],
            registry=self.registry,
        )
        self.alerts_suppressed = Counter(
            "vigil_alerts_suppressed",
            "Raised alerts not sent: same level alerted within the suppression window",
            registry=self.registry,
        )
        self.consumer_lag = Gauge(
            "vigil_consumer_lag",
            "Records behind the partition's high watermark after the last processed batch",
            ["topic", "partition"],
            registry=self.registry,
        )
        self.model_seconds = Histogram(
            "vigil_model_seconds",
            "Time to score one batch's patients, by model",
            ["model"],
            buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1),
            registry=self.registry,
        )
        self.batch_seconds = Histogram(
            "vigil_batch_processing_seconds",
            "Time to process one consumed batch (validate, Redis, score, produce)",
            ["topic"],
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
            registry=self.registry,
        )
        self.event_latency = Histogram(
            "vigil_event_latency_seconds",
            "From the input record's Kafka timestamp to its score being acknowledged",
            ["topic"],
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
            registry=self.registry,
        )
        self.batch_size = Histogram(
            "vigil_batch_size",
            "Records per consumed batch",
            ["topic"],
            buckets=(1, 5, 10, 25, 50, 100, 250, 500, 1000),
            registry=self.registry,
        )
