"""Topic creation on worker start: the contract's counts, and safe when workers race."""

from __future__ import annotations

import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest
from kafka import KafkaConsumer

from streams.settings import Settings
from streams.topics import ensure_topics

pytestmark = pytest.mark.services


def test_workers_starting_together_both_get_the_topics(services) -> None:
    prefix = f"tp{uuid.uuid4().hex[:8]}."
    settings = Settings(kafka_bootstrap=services.kafka_bootstrap, topic_prefix=prefix)
    with ThreadPoolExecutor(4) as pool:
        created = list(pool.map(lambda _: ensure_topics(settings), range(4)))
    assert sorted(name for names in created for name in names) == sorted(
        f"{prefix}{t}"
        for t in ("vitals.v1", "ehr-notes.v1", "imaging-studies.v1", "risk-scores.v1",
                  "risk-alerts.v1", "dead-letter.v1")
    )  # fmt: skip
    consumer = KafkaConsumer(bootstrap_servers=services.kafka_bootstrap)
    try:
        assert len(consumer.partitions_for_topic(f"{prefix}vitals.v1")) == 12
        assert len(consumer.partitions_for_topic(f"{prefix}risk-alerts.v1")) == 12
        assert len(consumer.partitions_for_topic(f"{prefix}dead-letter.v1")) == 1
    finally:
        consumer.close()
    assert ensure_topics(settings) == []
