"""Topic names of CONTRACTS.md, their partition counts, and their creation."""

from __future__ import annotations

import time
from dataclasses import dataclass

from streams.settings import Settings

VITALS = "vitals.v1"
NOTES = "ehr-notes.v1"
IMAGING = "imaging-studies.v1"
SCORES = "risk-scores.v1"
ALERTS = "risk-alerts.v1"
DEAD_LETTER = "dead-letter.v1"

INPUTS = (VITALS, NOTES, IMAGING)
"""Co-partitioned: same key and same partition count, so one worker owns a patient."""


@dataclass(frozen=True)
class TopicSpec:
    name: str
    partitions: int


def topic_specs(settings: Settings) -> list[TopicSpec]:
    n = settings.topic_partitions
    return [
        *(TopicSpec(settings.topic(t), n) for t in (*INPUTS, SCORES, ALERTS)),
        TopicSpec(settings.topic(DEAD_LETTER), 1),
    ]


def ensure_topics(settings: Settings) -> list[str]:
    """Create missing topics; returns the names created. Existing topics are left alone,
    but input topics whose partition counts differ are refused: they would split one
    patient's events across workers."""
    from kafka.admin import NewTopic
    from kafka.errors import TopicAlreadyExistsError

    from streams.kafka import admin_client

    specs = topic_specs(settings)
    admin = admin_client(settings)
    try:
        existing = set(admin.list_topics())
        created = []
        for spec in specs:
            if spec.name in existing:
                continue
            try:
                admin.create_topics(
                    [NewTopic(spec.name, spec.partitions, settings.topic_replication)]
                )
                created.append(spec)
            except TopicAlreadyExistsError:
                pass  # another worker starting at the same moment created it
        inputs = [settings.topic(t) for t in INPUTS]
        deadline = time.monotonic() + 15
        while True:  # a topic just created may show no partitions for a moment
            counts = {d["name"]: len(d["partitions"]) for d in admin.describe_topics(inputs)}
            if all(counts.values()) or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        if len(set(counts.values())) > 1:
            raise RuntimeError(f"input topics are not co-partitioned: {counts}")
        return [s.name for s in created]
    finally:
        admin.close()
