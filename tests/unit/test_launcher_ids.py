import base64
import uuid

import pytest

from streams import launcher


def test_kafka_cluster_id_never_starts_with_a_dash(monkeypatch: pytest.MonkeyPatch) -> None:
    # a first byte of 0xf8 makes base64url's first character '-' (62): the storage tool
    # would read such an id as an option
    dashed = uuid.UUID(bytes=b"\xf8" + bytes(15))
    plain = uuid.UUID(bytes=bytes(16))
    assert base64.urlsafe_b64encode(dashed.bytes).startswith(b"-")
    draws = iter([dashed, dashed, plain])
    monkeypatch.setattr(launcher.uuid, "uuid4", lambda: next(draws))
    assert launcher._cluster_id() == "A" * 22


def test_free_ports_are_distinct_and_free() -> None:
    ports = launcher.free_ports(64)
    assert len(set(ports)) == 64
    assert not any(launcher.port_open(p) for p in ports[:8])
