"""An agent's batches, taken while the previous batch is handled.

Faust's `take_events` takes nothing while the batch it yielded is handled, then takes at
its own pace until `max_` events or `within` seconds: every event waits for the batch in
hand, then for the timer. Traced in a worker at 1,500 events/s, 57 ms of each 196 ms cycle
went to that timer, and the thread sat idle while the Redis script ran (BENCHMARKS.md,
"Continuous intake").

Here the agent's loop only moves events into a buffer of at most `max_events`, and a
second task hands the buffer to the handler as soon as the previous batch is done, letting
it grow first only while events keep coming (a backlog being read). So a batch is what
arrived meanwhile: batches grow with the load, nothing waits on a timer at light load, and
Faust's per-message work runs while the handler awaits Redis and Kafka. An event is acked,
so that its offset may be committed, only once its batch has been handled: a crash or a
stop before that leaves it to be redelivered.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable, Sequence

import faust
from faust.types import EventT

Handler = Callable[[Sequence[EventT]], Awaitable[None]]

TOP_UP_S = 0.05
"""The most a batch waits to grow once the handler is free."""
QUIET_S = 0.001
"""A batch starts once the buffer has not grown for this long. A backlog (Faust takes about
10 events a millisecond here) or a feed of over ~1,000 events/s keeps it growing, so under
load batches fill for up to `TOP_UP_S`; at light load a batch starts at once."""
TOP_UP_UNTIL = 500
"""A batch that already holds this many events starts at once. In a backlog the previous
batch's handling took in that many, and with a cap of 2,000 vitals events every batch
waited up to `TOP_UP_S` to grow: a worker spent 22 % of a 100,000-event drain outside its
batches, 2 % with a cap of 500 (BENCHMARKS.md, "Change: larger vitals batches")."""


async def run_batches(
    stream: faust.StreamT, handle: Handler, max_events: int, top_up_until: int = TOP_UP_UNTIL
) -> None:
    """Hand `stream`'s events to `handle` in arrival order, in batches of 1 to `max_events`;
    a batch grows (up to `TOP_UP_S`) only while it holds fewer than `top_up_until`.

    When the stream ends, what it left is handled before this returns; an exception of
    `handle` is raised here, and a cancelled agent leaves its unhandled events unacked."""
    buffer: deque[EventT] = deque()
    arrived = asyncio.Event()
    room = asyncio.Event()
    ended = False
    clock = asyncio.get_running_loop().time

    async def handle_batches() -> None:
        while buffer or not ended:
            await arrived.wait()
            deadline = clock() + TOP_UP_S
            while len(buffer) < min(max_events, top_up_until) and clock() < deadline:
                size = len(buffer)
                await asyncio.sleep(QUIET_S)  # the agent's loop takes events meanwhile
                if len(buffer) == size:
                    break
            batch = [buffer.popleft() for _ in range(min(max_events, len(buffer)))]
            if not buffer:
                arrived.clear()
            room.set()
            if batch:
                await handle(batch)
            for event in batch:
                await stream.ack(event)

    stream.enable_acks = False  # each event is acked above, once its batch is handled
    handler = asyncio.ensure_future(handle_batches())
    try:
        async for event in stream.events():
            buffer.append(event)
            arrived.set()
            while len(buffer) >= max_events and not handler.done():
                room.clear()
                waiting = asyncio.ensure_future(room.wait())
                await asyncio.wait({handler, waiting}, return_when=asyncio.FIRST_COMPLETED)
                waiting.cancel()
            if handler.done():
                break
        ended = True
        arrived.set()
        await handler
    finally:
        handler.cancel()
