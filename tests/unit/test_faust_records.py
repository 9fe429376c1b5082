"""Faust's per-record work in the worker: input records become events without Faust's codec
registry (`streams.kafka.raw_schema`), and the fetch loop's producer-buffer check reads no
settings (`streams.kafka.faust_transport`)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
from faust.serializers.registry import Registry
from faust.types import Message

from streams import topics
from tests.helpers import unstarted_worker


def _message(key: bytes | None, value: bytes | None) -> Message:
    return Message(
        topic="t-records.vitals.v1", partition=0, offset=5, timestamp=0.0, timestamp_type=0,
        headers=[("h", b"1")], key=key, value=value, checksum=None,
    )  # fmt: skip


def test_input_records_become_events_with_their_raw_bytes(tmp_path: Path) -> None:
    def registry(*_: Any, **__: Any) -> Any:
        raise AssertionError("Faust's codec registry was called for a raw record")

    async def decode_all(topic: Any) -> list[Any]:
        # Faust's conductor calls this for every fetched record
        return [
            await topic.decode(_message(b"p-1", b'{"not": "parsed"}'), propagate=True),
            await topic.decode(_message(None, None), propagate=True),
            await topic.decode(_message(b"p-2", b"\xff not json"), propagate=True),
        ]

    # a topic compiles its decoder when it is built, so the registry is replaced before
    with (
        mock.patch.object(Registry, "loads_key", registry),
        mock.patch.object(Registry, "loads_value", registry),
    ):
        app = (worker := unstarted_worker(tmp_path, "t-records.")).app
        first, empty, garbage = asyncio.run(decode_all(worker.input_topics[topics.VITALS]))
    assert (first.key, first.value) == (b"p-1", b'{"not": "parsed"}')
    assert first.message.offset == 5 and first.headers == {"h": b"1"}
    assert isinstance(first, app.conf.Event) and first.app is app
    # a tombstone and bytes that are not JSON are the pipelines' to dead-letter
    assert (empty.key, empty.value) == (None, None)
    assert garbage.value == b"\xff not json"


@pytest.mark.parametrize(("waiting", "flushed"), [(0, False), (100, False), (101, True)])
def test_the_fetch_loops_buffer_check_flushes_only_a_full_buffer(
    tmp_path: Path, waiting: int, flushed: bool
) -> None:
    app = unstarted_worker(tmp_path, "t-ebb.").app
    buffer = app.producer.buffer
    flush = mock.AsyncMock(return_value=0)
    # Faust's own check reads a setting for every record; only a full buffer may here
    conf = mock.PropertyMock(side_effect=AssertionError("a setting read per record"))

    async def check() -> None:
        for i in range(waiting):
            buffer.pending.put_nowait(i)
        with mock.patch.object(buffer, "flush_atmost", flush):
            if flushed:
                await buffer.wait_until_ebb()
            else:
                with mock.patch.object(type(app), "conf", conf):
                    await buffer.wait_until_ebb()

    asyncio.run(check())
    assert flush.await_count == int(flushed)
    if flushed:
        flush.assert_awaited_with(buffer.max_messages)
