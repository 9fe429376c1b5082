"""A labelled cohort on disk: the vitals event log and each patient's outcome.

One format for every source (the simulated cohort, the PhysioNet 2019 loader), so that
training, evaluation and a Kafka replay read the same files:

- `vitals.jsonl`: one `VitalsObservation` (CONTRACTS.md) per line, in time order; exactly
  the bytes a replay publishes to `vitals.v1`.
- `outcomes.jsonl`: one `Outcome` per patient.
- `cohort.json`: what made the cohort (generator and seed, or source folder), counts, and
  the SHA-256 of both files; training copies it into the model manifest.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson
from pydantic import AwareDatetime, BaseModel, ConfigDict

from features.samples import VitalsSample
from streams.events import VitalsObservation

VITALS_FILE = "vitals.jsonl"
OUTCOMES_FILE = "outcomes.jsonl"
INFO_FILE = "cohort.json"


class Outcome(BaseModel):
    """What happened to one patient; `event_at` is the label the models predict."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    patient_id: str
    unit: str | None = None
    admitted_at: AwareDatetime
    discharged_at: AwareDatetime
    """End of observation: discharge, the end of the simulation, or the event."""
    event_at: AwareDatetime | None = None
    """Deterioration event (ICU transfer, cardiac arrest or death surrogate); None if none."""
    event_kind: str | None = None
    syndrome: str | None = None
    """Hidden cause of the deterioration (simulated cohorts only)."""
    baseline: str | None = None
    """Chronic physiology, e.g. `copd` or `chronic_tachycardia` (simulated cohorts only)."""


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def write_cohort(
    directory: Path,
    events: Iterable[dict[str, Any]],
    outcomes: Iterable[Outcome],
    info: dict[str, Any],
) -> dict[str, Any]:
    """Write the three files; returns what `cohort.json` holds."""
    directory.mkdir(parents=True, exist_ok=True)
    n_events = 0
    with (directory / VITALS_FILE).open("wb") as f:
        for event in events:
            f.write(orjson.dumps(event) + b"\n")
            n_events += 1
    outcome_list = list(outcomes)
    with (directory / OUTCOMES_FILE).open("wb") as f:
        for outcome in outcome_list:
            f.write(outcome.model_dump_json().encode() + b"\n")
    summary = {
        **info,
        "patients": len(outcome_list),
        "vitals_events": n_events,
        "deterioration_events": sum(o.event_at is not None for o in outcome_list),
        "sha256": {
            VITALS_FILE: _sha256(directory / VITALS_FILE),
            OUTCOMES_FILE: _sha256(directory / OUTCOMES_FILE),
        },
    }
    (directory / INFO_FILE).write_bytes(orjson.dumps(summary, option=orjson.OPT_INDENT_2))
    return summary


def read_info(directory: Path) -> dict[str, Any]:
    return orjson.loads((directory / INFO_FILE).read_bytes())


def read_outcomes(directory: Path) -> list[Outcome]:
    with (directory / OUTCOMES_FILE).open("rb") as f:
        return [Outcome.model_validate_json(line) for line in f if line.strip()]


def iter_vitals_lines(directory: Path) -> Iterator[bytes]:
    """The raw event lines, as a replay publishes them."""
    with (directory / VITALS_FILE).open("rb") as f:
        for line in f:
            if line.strip():
                yield line.rstrip(b"\n")


def read_vitals(directory: Path) -> dict[str, list[VitalsSample]]:
    """Samples per patient in log order, validated exactly as the stream validates them;
    an invalid line is an error here (a cohort file is trusted input, not a feed)."""
    by_patient: dict[str, list[VitalsSample]] = {}
    for number, line in enumerate(iter_vitals_lines(directory), start=1):
        try:
            obs = VitalsObservation.model_validate_json(line)
        except ValueError as exc:
            raise ValueError(f"{directory / VITALS_FILE}:{number}: {exc}") from None
        by_patient.setdefault(obs.patient_id, []).append(VitalsSample.from_event(obs))
    return by_patient


def isoformat(ts: datetime) -> str:
    """RFC 3339 with `Z`, the form every Vigil producer writes."""
    return ts.isoformat().replace("+00:00", "Z")
