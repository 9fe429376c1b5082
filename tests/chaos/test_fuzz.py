"""Bad input at volume: generated garbage interleaved with valid events, into a real worker.

Every invalid payload must land in dead-letter.v1, every valid event must be applied, and
the worker must stay up throughout.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import orjson
import pytest
import redis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from streams.deadletters import RawRecord, Rejected, parse_record
from streams.events import VitalsObservation
from tests.helpers import WorkerProcess, consume_until, produce, wait_for

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


@st.composite
def valid_event(draw: st.DrawFn, patients: list[str]) -> dict:
    event = {
        "event_id": uuid.uuid4().hex,
        "patient_id": draw(st.sampled_from(patients)),
        "observed_at": (NOW - timedelta(minutes=draw(st.integers(0, 600)))).isoformat(),
        "heart_rate": draw(st.floats(30, 200)),
    }
    if draw(st.booleans()):
        event["spo2"] = draw(st.integers(70, 100))
    if draw(st.booleans()):  # unknown fields are ignored, never an error
        event[draw(st.text(min_size=1, max_size=10))] = draw(json_any)
    return event


def mutations(base: dict) -> st.SearchStrategy[bytes]:
    dumps = orjson.dumps
    return st.one_of(
        # wrong types
        st.sampled_from(
            ["heart_rate", "spo2", "observed_at", "event_id", "supplemental_o2"]
        ).flatmap(lambda f: json_any.map(lambda v: dumps({**base, f: v}))),
        # huge strings
        st.integers(129, 5000).map(lambda n: dumps({**base, "event_id": "x" * n})),
        st.integers(65, 5000).map(lambda n: dumps({**base, "unit": "u" * n})),
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
            [
                "yesterday",
                "2026-13-45T10:00:00Z",
                "2026-11-22T10:00:00",
                "",
                "1700000000",
                "2026-11-22",
            ]
        ).map(lambda t: dumps({**base, "observed_at": t})),
        # bad UTF-8 and raw bytes
        st.binary(min_size=1, max_size=200).map(lambda b: b + b"\xff"),
        st.binary(max_size=200),
        # oversize
        st.just(dumps({**base, "padding": "p" * (MAX_BYTES + 10)})),
        # out of range
        st.sampled_from([("heart_rate", 0), ("spo2", 101), ("temperature", 50)]).map(
            lambda kv: dumps({**base, kv[0]: kv[1]})
        ),
    )


def is_valid(payload: bytes) -> bool:
    try:
        parse_record(RawRecord("t", 0, 0, None, payload), VitalsObservation, MAX_BYTES)
        return True
    except (Rejected, ValidationError):
        return False


@pytest.mark.services
# No shrinking: each example drives a real worker, and the failure output says enough.
@settings(
    max_examples=6,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    phases=[Phase.generate],
)
@given(data=st.data())
def test_fuzzed_payloads_are_dead_lettered_and_valid_events_all_applied(
    worker: WorkerProcess, data: st.DataObject
) -> None:
    run = uuid.uuid4().hex[:6]
    patients = [f"fz-{run}-{i}" for i in range(8)]
    valid = data.draw(st.lists(valid_event(patients), min_size=20, max_size=40))
    bad = data.draw(st.lists(valid_event(patients).flatmap(mutations), min_size=20, max_size=40))
    payloads: list[tuple[bytes, bytes]] = [
        (e["patient_id"].encode(), orjson.dumps(e)) for e in valid
    ]
    payloads += [(f"bad-{run}".encode(), p) for p in bad]
    order = data.draw(st.permutations(range(len(payloads))))
    payloads = [payloads[i] for i in order]
    expected_dead = sum(not is_valid(p) for _, p in payloads)
    assert expected_dead > 0  # some mutations stay valid (e.g. heart_rate 72 as an int)

    produce(worker.services.kafka_bootstrap, worker.topic("vitals.v1"), payloads)
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

    valid_count = {pid: 0 for pid in patients}
    seen: set[tuple[str, str]] = set()  # event ids are de-duplicated per patient
    for _, p in payloads:
        if is_valid(p):
            event = orjson.loads(p)
            if (event["patient_id"], event["event_id"]) not in seen:
                seen.add((event["patient_id"], event["event_id"]))
                valid_count[event["patient_id"]] += 1
    client = redis.Redis.from_url(worker.services.redis_url)

    def accepted() -> dict[str, int]:
        """Events applied or (older than as_of - 24 h) dropped, per patient."""
        counts = {}
        for pid in patients:
            meta = client.hgetall(f"vigil:{worker.prefix}p:{{{pid}}}:meta")
            counts[pid] = int(meta.get(b"accepted", 0)) + int(meta.get(b"dropped", 0))
        return counts

    try:
        wait_for(lambda: accepted() == valid_count, timeout_s=30)
    except TimeoutError:
        assert accepted() == valid_count, [p for _, p in payloads if is_valid(p)]
    client.close()
    assert worker.get("/health").status_code == 200
    assert worker.proc.poll() is None
    print(
        f"\nFuzz: {len(payloads)} payloads, {expected_dead} dead letters, "
        f"{len(seen)} valid events applied to {sum(1 for n in valid_count.values() if n)} patients"
    )
