"""Bad input at volume: generated garbage interleaved with valid events, into every input
topic of a real worker.

Every invalid payload must land in dead-letter.v1, every valid event must be applied (its
features, or its modality score, in Redis), and the worker must stay up throughout.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import orjson
import pytest
import redis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from features.store import PatientKeys
from models.image_model import ImageError, read_image
from models.manifest import install
from streams.deadletters import RawRecord, Rejected, parse_record
from streams.events import ImagingStudy, VitalsObservation
from streams.notes import parse_note
from tests.helpers import WorkerProcess, consume_until, produce, wait_for
from tests.modelkit import tiny_image_model, tiny_notes_model

pytestmark = pytest.mark.services

NOW = datetime.now(UTC)
MAX_BYTES = 1024 * 1024

json_leaf = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**63), 2**63 - 1),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=40),
)
json_any = st.recursive(
    json_leaf,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=20,
)  # fmt: skip


def _minutes_ago(draw: st.DrawFn) -> str:
    return (NOW - timedelta(minutes=draw(st.integers(0, 600)))).isoformat()


def _extra(draw: st.DrawFn, event: dict) -> dict:
    if draw(st.booleans()):  # unknown fields are ignored, never an error
        event[draw(st.text(min_size=1, max_size=10))] = draw(json_any)
    return event


@st.composite
def valid_vitals(draw: st.DrawFn, patients: list[str], images: list[str]) -> dict:
    event = {
        "event_id": uuid.uuid4().hex,
        "patient_id": draw(st.sampled_from(patients)),
        "observed_at": _minutes_ago(draw),
        "heart_rate": draw(st.floats(30, 200)),
    }
    if draw(st.booleans()):
        event["spo2"] = draw(st.integers(70, 100))
    return _extra(draw, event)


@st.composite
def valid_note(draw: st.DrawFn, patients: list[str], images: list[str]) -> dict:
    event = {
        "event_id": uuid.uuid4().hex,
        "patient_id": draw(st.sampled_from(patients)),
        "written_at": _minutes_ago(draw),
        "note_id": uuid.uuid4().hex[:12],
        "note_type": draw(st.sampled_from(["nursing", "progress", "radiology"])),
        "text": draw(
            st.sampled_from(["Comfortable overnight. Obs stable.", "Febrile 38.9, new O2."])
        )
        + draw(st.text(max_size=60)),
    }
    return _extra(draw, event)


@st.composite
def valid_study(draw: st.DrawFn, patients: list[str], images: list[str]) -> dict:
    event = {
        "event_id": uuid.uuid4().hex,
        "patient_id": draw(st.sampled_from(patients)),
        "acquired_at": _minutes_ago(draw),
        "study_uid": f"1.2.826.0.{draw(st.integers(1, 10**9))}",
        "modality": "DX",
        "image_uri": draw(st.sampled_from(images)),
    }
    return _extra(draw, event)


def mutations(base: dict, spec: Topic) -> st.SearchStrategy[bytes]:
    dumps = orjson.dumps
    return st.one_of(
        # wrong types
        st.sampled_from(spec.typed_fields).flatmap(
            lambda f: json_any.map(lambda v: dumps({**base, f: v}))
        ),
        # huge strings
        st.integers(129, 5000).map(lambda n: dumps({**base, "event_id": "x" * n})),
        st.integers(65, 5000).map(lambda n: dumps({**base, "patient_id": "u" * n})),
        # deep nesting, as the whole payload or as a field
        st.integers(50, 3000).map(lambda d: b"[" * d + b"]" * d),
        st.integers(50, 3000).map(
            lambda d: dumps(base)[:-1] + b',"x":' + b"[" * d + b"]" * d + b"}"
        ),
        # NaN / Infinity
        st.sampled_from([b"NaN", b"Infinity", b"-Infinity", b"1e999"]).map(
            lambda v: dumps(base)[:-1] + b',"temperature":' + v + b"}"
        ),
        # bad timestamps
        st.sampled_from(
            ["yesterday", "2026-13-45T10:00:00Z", "2026-11-22T10:00:00", "", "1700000000"]
        ).map(lambda t: dumps({**base, spec.time_field: t})),
        # bad UTF-8 and raw bytes
        st.binary(min_size=1, max_size=200).map(lambda b: b + b"\xff"),
        st.binary(max_size=200),
        # oversize
        st.just(dumps({**base, "padding": "p" * (MAX_BYTES + 10)})),
        # the topic's own semantic failures (out of range, empty note, unreadable image)
        st.sampled_from(spec.semantic).map(lambda kv: dumps({**base, kv[0]: kv[1]})),
    )


def vitals_valid(payload: bytes) -> bool:
    try:
        parse_record(RawRecord("t", 0, 0, None, payload), VitalsObservation, MAX_BYTES)
        return True
    except (Rejected, ValidationError):
        return False


def note_valid(payload: bytes) -> bool:
    try:
        parse_note(RawRecord("t", 0, 0, None, payload), MAX_BYTES)
        return True
    except (Rejected, ValidationError):
        return False


def study_valid(payload: bytes) -> bool:
    try:
        study = parse_record(RawRecord("t", 0, 0, None, payload), ImagingStudy, MAX_BYTES)
        read_image(study.image_uri, 64 * 1024 * 1024)
        return True
    except (Rejected, ValidationError, ImageError):
        return False


@dataclass(frozen=True)
class Topic:
    name: str
    valid: Callable[..., st.SearchStrategy[dict]]
    is_valid: Callable[[bytes], bool]
    time_field: str
    typed_fields: tuple[str, ...]
    semantic: tuple[tuple[str, object], ...]
    modality: str | None
    """Redis field of the modality score, or None for vitals (features)."""


TOPICS = {
    "vitals.v1": Topic(
        "vitals.v1", valid_vitals, vitals_valid, "observed_at",
        ("heart_rate", "spo2", "observed_at", "event_id", "supplemental_o2"),
        (("heart_rate", 0), ("spo2", 101), ("temperature", 50)), None,
    ),
    "ehr-notes.v1": Topic(
        "ehr-notes.v1", valid_note, note_valid, "written_at",
        ("text", "note_id", "written_at", "event_id", "note_type"),
        (("text", ""), ("text", " \n\t "), ("note_id", "")), "notes",
    ),
    "imaging-studies.v1": Topic(
        "imaging-studies.v1", valid_study, study_valid, "acquired_at",
        ("image_uri", "study_uid", "acquired_at", "event_id"),
        (("image_uri", "file:///nonexistent/x.dcm"), ("image_uri", "https://pacs/x"),
         ("image_uri", "file:///etc/hostname")), "imaging",
    ),
}  # fmt: skip


@pytest.fixture(scope="module")
def fuzz_inputs(worker: WorkerProcess, tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    """Small models in the worker's model directory and a few readable images."""
    models = worker.log.parent / "models"
    install(models, *tiny_notes_model(1))
    install(models, *tiny_image_model(1))
    folder = Path(tmp_path_factory.mktemp("images"))
    rng = np.random.default_rng(0)
    uris = []
    for i in range(3):
        path = folder / f"film-{i}.npy"
        np.save(path, rng.normal(1000, 200, (64, 64)).astype(np.float32))
        uris.append(path.as_uri())
    time.sleep(6)  # past the worker's model poll interval
    return uris


@pytest.mark.services
@pytest.mark.parametrize("topic", list(TOPICS))
# No shrinking: each example drives a real worker, and the failure output says enough.
@settings(
    max_examples=3,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    phases=[Phase.generate],
)
@given(data=st.data())
def test_fuzzed_payloads_are_dead_lettered_and_valid_events_all_applied(
    worker: WorkerProcess, fuzz_inputs: list[str], topic: str, data: st.DataObject
) -> None:
    spec = TOPICS[topic]
    run = uuid.uuid4().hex[:6]
    patients = [f"fz-{run}-{i}" for i in range(8)]
    events = spec.valid(patients, fuzz_inputs)
    valid = data.draw(st.lists(events, min_size=20, max_size=40))
    bad = data.draw(
        st.lists(events.flatmap(lambda b: mutations(b, spec)), min_size=20, max_size=40)
    )
    payloads: list[tuple[bytes, bytes]] = [
        (e["patient_id"].encode(), orjson.dumps(e)) for e in valid
    ]
    payloads += [(f"bad-{run}".encode(), p) for p in bad]
    order = data.draw(st.permutations(range(len(payloads))))
    payloads = [payloads[i] for i in order]
    expected_dead = sum(not spec.is_valid(p) for _, p in payloads)
    assert expected_dead > 0

    produce(worker.services.kafka_bootstrap, worker.topic(topic), payloads)
    keys = {*patients, f"bad-{run}"}
    letters = consume_until(
        worker.services.kafka_bootstrap,
        worker.topic("dead-letter.v1"),
        lambda vs: sum(v["key"] in keys for v in vs) >= expected_dead,
        timeout_s=120,
    )
    ours = [v for v in letters if v["key"] in keys]
    assert len(ours) == expected_dead
    assert all(v["error"]["type"] and v["error"]["message"] for v in ours)

    # the stdlib parser, like pydantic's, reads NaN and 1e999 in fields the schema ignores
    applied = [json.loads(p) for _, p in payloads if spec.is_valid(p)]
    client = redis.Redis.from_url(worker.services.redis_url)

    def keys(pid: str) -> PatientKeys:
        return PatientKeys(f"vigil:{worker.prefix}", pid)

    if spec.modality is None:
        expected = {pid: len({e["event_id"] for e in applied if e["patient_id"] == pid})
                    for pid in patients}  # fmt: skip

        def state() -> dict:
            """Events applied or (older than as_of - 24 h) dropped, per patient."""
            meta = {pid: client.hgetall(keys(pid).meta) for pid in patients}
            return {pid: int(m.get(b"accepted", 0)) + int(m.get(b"dropped", 0))
                    for pid, m in meta.items()}  # fmt: skip
    else:
        newest = {}
        for e in applied:  # the latest valid event per patient is the one kept
            at = datetime.fromisoformat(e[spec.time_field])
            newest[e["patient_id"]] = max(newest.get(e["patient_id"], at), at)
        expected = {pid: newest.get(pid) for pid in patients}

        def state() -> dict:
            got = {}
            for pid in patients:
                raw = client.hget(keys(pid).modal, spec.modality)
                got[pid] = None
                if raw is not None:
                    stored = orjson.loads(raw.split(b"|", 1)[1])
                    at = stored.get("written_at") or stored.get("acquired_at")
                    got[pid] = datetime.fromisoformat(at)
            return got

    try:
        wait_for(lambda: state() == expected, timeout_s=60)
    except TimeoutError:
        assert state() == expected
    client.close()
    assert worker.get("/health").status_code == 200
    assert worker.proc.poll() is None
    print(
        f"\nFuzz {topic}: {len(payloads)} payloads, {expected_dead} dead letters, "
        f"{len(applied)} valid events applied"
    )
