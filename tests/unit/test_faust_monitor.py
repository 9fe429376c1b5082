"""The worker's Faust monitor (`streams.kafka.lean_monitor`): nothing per record but what
Faust itself reads back."""

from __future__ import annotations

from pathlib import Path
from time import monotonic

from faust.types import TP, Message

from tests.helpers import unstarted_worker


def test_the_workers_monitor_keeps_only_what_faust_reads(tmp_path: Path) -> None:
    monitor = unstarted_worker(tmp_path, "t-monitor.").app.monitor
    tp = TP("t-monitor.vitals.v1", 3)
    message = Message(
        topic=tp.topic, partition=3, offset=7, timestamp=0.0, timestamp_type=0,
        headers=[], key=b"k", value=b"v", checksum=None,
    )  # fmt: skip
    before = monotonic()
    # the hooks Faust's sensor delegate calls for every record
    monitor.on_message_in(tp, 7, message)
    state = monitor.on_stream_event_in(tp, 7, None, None)
    monitor.on_stream_event_out(tp, 7, None, None, state)
    monitor.on_message_out(tp, 7, message)
    # read by Faust's slow-processing check (the aiokafka driver's verify_event_path)
    assert monitor.stream_inbound_time[tp] >= before
    # end offsets and commits reach it by direct calls, as before
    monitor.track_tp_end_offset(tp, 10)
    monitor.on_tp_commit({tp: 8})
    assert (monitor.tp_end_offsets[tp], monitor.tp_committed_offsets[tp]) == (10, 8)
    # and no statistics per record besides
    assert (monitor.messages_received_total, monitor.events_total) == (0, 0)
    assert message.time_in is None and not monitor.events_runtime
