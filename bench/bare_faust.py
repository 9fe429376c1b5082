"""The bare-Faust ceiling: an agent on the same topic layout that only parses JSON.

Run by `bench.ceilings` as a subprocess (`python -m bench.bare_faust TOPIC DATADIR`, the
caller owning DATADIR); prints `consumed <n> <monotonic seconds>` after every batch.
"""

from __future__ import annotations

import os
import sys
import time
import uuid

import faust
import orjson

from streams.kafka import faust_worker


def main() -> None:
    topic_name, datadir = sys.argv[1], sys.argv[2]
    app = faust.App(
        f"bench-bare-{uuid.uuid4().hex[:6]}",
        broker=f"kafka://{os.environ['VIGIL_KAFKA_BOOTSTRAP']}",
        datadir=datadir,
        store="memory://",
        key_serializer="raw",
        value_serializer="raw",
        consumer_auto_offset_reset="earliest",
        web_enabled=False,
    )
    topic = app.topic(topic_name, key_serializer="raw", value_serializer="raw", internal=False)
    seen = 0

    @app.agent(topic)
    async def parse_only(stream: faust.StreamT) -> None:
        nonlocal seen
        async for events in stream.take_events(500, within=0.05):
            for event in events:
                orjson.loads(event.message.value)
            seen += len(events)
            # Faust turns sys.stdout into a logger; the harness reads the real stdout
            print(f"consumed {seen} {time.monotonic()}", file=sys.__stdout__, flush=True)

    faust_worker(app, "warning").execute_from_commandline()


if __name__ == "__main__":
    main()
