"""`run_batches` against a stand-in for a Faust stream: its events and acks, nothing else
(the worker tests and the chaos tier drive it through real Faust and Kafka)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence

import pytest

from streams.intake import run_batches


class Stream:
    """`count` events reach its queue one every `gap_s` (all at once for 0), as Faust's
    consumer delivers them; records how far the stream was read and the acks."""

    def __init__(self, count: int, gap_s: float = 0.0) -> None:
        self.count = count
        self.gap_s = gap_s
        self.enable_acks = True
        self.taken = 0
        self.acked: list[int] = []
        self.queue: asyncio.Queue[int] = asyncio.Queue()

    async def _deliver(self) -> None:
        for i in range(self.count):
            if self.gap_s:
                await asyncio.sleep(self.gap_s)
            self.queue.put_nowait(i)

    async def events(self) -> AsyncIterator[int]:
        delivery = asyncio.ensure_future(self._deliver())
        for _ in range(self.count):
            await asyncio.sleep(0)
            event = await self.queue.get()
            self.taken = event + 1
            yield event
        await delivery

    async def ack(self, event: int) -> None:
        self.acked.append(event)


def run(
    stream: Stream,
    handle: Callable[[Sequence[int]], Awaitable[None]],
    max_events: int,
    **options: int,
) -> None:
    asyncio.run(run_batches(stream, handle, max_events, **options))  # type: ignore[arg-type]


def test_every_event_is_handled_once_in_order_and_acked_only_after_its_batch() -> None:
    stream = Stream(200)
    batches: list[list[int]] = []

    async def handle(events: Sequence[int]) -> None:
        assert not set(events) & set(stream.acked)
        await asyncio.sleep(0.001)
        batches.append(list(events))
        assert not set(events) & set(stream.acked)

    run(stream, handle, max_events=32)
    assert stream.enable_acks is False
    assert [e for b in batches for e in b] == list(range(200))
    assert stream.acked == list(range(200))
    assert max(len(b) for b in batches) <= 32


def test_events_arriving_during_a_batch_form_the_next_one_without_a_timer() -> None:
    stream = Stream(60, gap_s=0.003)
    sizes: list[int] = []

    async def handle(events: Sequence[int]) -> None:
        sizes.append(len(events))
        await asyncio.sleep(0.02)  # a slow batch: the next ones pile up meanwhile

    run(stream, handle, max_events=500)
    assert sizes[0] == 1  # the first event is not held back waiting for company
    assert max(sizes[1:]) > 5
    assert sum(sizes) == 60


def test_taking_stops_while_the_buffer_holds_a_whole_batch() -> None:
    stream = Stream(100)
    release = asyncio.Event()
    seen: list[int] = []

    async def handle(events: Sequence[int]) -> None:
        if not seen:
            await asyncio.sleep(0.05)
            # one batch in hand, one full batch waiting: nothing more was read
            seen.append(stream.taken)
            release.set()
        await release.wait()

    run(stream, handle, max_events=10)
    assert seen == [20]  # the batch of 10 being handled, then 10 waiting
    assert stream.acked == list(range(100))


def test_a_batch_takes_what_faust_already_holds_before_it_starts() -> None:
    stream = Stream(300)  # a backlog: all delivered before the first batch
    sizes: list[int] = []

    async def handle(events: Sequence[int]) -> None:
        sizes.append(len(events))

    run(stream, handle, max_events=128)
    assert sizes == [128, 128, 44]


def test_an_error_in_the_handler_reaches_the_agent_and_nothing_is_acked() -> None:
    stream = Stream(50, gap_s=0.001)

    async def handle(events: Sequence[int]) -> None:
        raise RuntimeError("bad batch")

    with pytest.raises(RuntimeError, match="bad batch"):
        run(stream, handle, max_events=10)
    assert stream.acked == []


def test_a_batch_that_already_holds_enough_starts_without_topping_up() -> None:
    stream = Stream(300, gap_s=0.0005)  # events keep coming: a top-up would keep growing
    taken_at: list[tuple[str, int]] = []

    async def handle(events: Sequence[int]) -> None:
        taken_at.append(("start", stream.taken))
        if len(taken_at) == 1:
            await asyncio.sleep(0.03)  # more than `top_up_until` arrive meanwhile
        taken_at.append(("end", stream.taken))

    run(stream, handle, max_events=1000, top_up_until=5)
    # the second batch starts with what the buffer held when the first one ended
    assert taken_at[1][1] - taken_at[0][1] > 5
    assert taken_at[2] == ("start", taken_at[1][1])
