"""The live demo's ward and the chaos tests' feed, reproducible from a seed.

The physiology is the training cohort's (models/cohort.py), so the demo shows patients
exactly as the models learned them: personal and chronic baselines, benign episodes,
syndromes that deteriorate or recover, monitor artefacts and dropouts, manual sets. Only
the ward differs: everyone is on a bedside monitor that sends every `interval_s` of
simulated time, and on the ward from the start to the end of the feed (a patient leaves
it only at a deterioration event), because a demo needs a steady ward, not admissions.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from models import cohort
from models.cohort import CohortSpec, PatientCourse

DEFAULT_START = datetime(2026, 1, 5, tzinfo=UTC)


def _spec(
    patients: int, deteriorating: float, start: datetime, hours: float, rng: random.Random
) -> CohortSpec:
    return CohortSpec(
        patients=patients,
        days=hours / 24,
        seed=rng.getrandbits(63),
        monitored_share=1.0,
        deteriorating=deteriorating,
        start=start,
        whole_ward=True,
    )


def make_ward(
    n: int,
    deteriorating: float,
    hours: float,
    rng: random.Random,
    start: datetime = DEFAULT_START,
) -> list[PatientCourse]:
    """The hidden courses `ward_feed` plays for the same seed (`rng = Random(seed)`)."""
    return cohort.courses(_spec(n, deteriorating, start, hours, rng))


def ward_feed(
    patients: int,
    deteriorating: float,
    start: datetime,
    hours: float,
    interval_s: float,
    seed: int,
) -> Iterator[dict[str, Any]]:
    """Events of the whole ward in time order, `interval_s` of simulated time apart."""
    spec = replace(
        _spec(patients, deteriorating, start, hours, random.Random(seed)),
        monitor_interval_s=interval_s,
    )
    return cohort.events(spec, cohort.courses(spec))
