"""Replay: `vigil rebuild-features` over a day of a 1,000-bed ward (1.4 M events).

The full run replays the whole day; `--quick` replays smaller wards and scales the time
linearly by bed-hours to the target. That scaling is optimistic both ways the ward can
shrink:
- fewer beds over 24 h keep the window as long as the real one, but each fetched batch
  then holds more events per patient, so there are fewer Lua calls and scores per event;
- 1,000 beds over fewer hours keep the batches' mix of patients, but every window is
  shorter than a day's. Since Redis layout 2.2 (running window sums) that matters much
  less than when the Lua script rescanned the whole window on every call: it now rescans
  a window only when an extreme or its anchor leaves it.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from dataclasses import dataclass

from bench.feed import produce, ward_hours
from bench.services import Services
from streams import topics

TARGET_BEDS = 1000
TARGET_HOURS = 24.0


@dataclass(frozen=True)
class Replay:
    beds: int
    hours: float
    events: int
    patients_rebuilt: int
    seconds: float
    """The command's own timing (from its last line), without interpreter start-up."""
    wall_seconds: float

    @property
    def events_per_s(self) -> float:
        return self.events / self.seconds

    @property
    def extrapolated_seconds(self) -> float:
        """Scaled linearly by bed-hours to TARGET_BEDS x TARGET_HOURS."""
        return self.seconds * (TARGET_BEDS * TARGET_HOURS) / (self.beds * self.hours)


def rebuild(services: Services, beds: int, hours: float) -> Replay:
    """Produce `beds` x `hours` of ward events to a fresh vitals topic, then time the
    command that restores every patient's Redis features from it."""
    settings = services.fresh(f"replay{beds}")
    records = ward_hours(beds, hours, seed=3)
    produce(services.bootstrap, settings.topic(topics.VITALS), records)
    env = {
        **os.environ,
        "VIGIL_KAFKA_BOOTSTRAP": settings.kafka_bootstrap,
        "VIGIL_REDIS_URL": settings.redis_url,
        "VIGIL_TOPIC_PREFIX": settings.topic_prefix,
        "COLUMNS": "200",
    }
    started = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "streams.cli", "rebuild-features"],
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=900,
    )
    wall = time.perf_counter() - started
    said = " ".join(proc.stderr.split())
    match = re.search(r"rebuilt (\d+) patients from (\d+) records .* in ([\d.]+)s", said)
    if proc.returncode != 0 or match is None:
        raise RuntimeError(f"rebuild-features failed ({proc.returncode}): {said[-1500:]}")
    if int(match.group(2)) != len(records):
        raise RuntimeError(f"rebuild-features read {match.group(2)} of {len(records)} records")
    return Replay(beds, hours, len(records), int(match.group(1)), float(match.group(3)), wall)
