"""`streams.eager`: a coroutine run in the caller until it waits, and the worker consumer's
use of it for each fetched record (Faust's `wait_first` race only once a record waits)."""

from __future__ import annotations

import asyncio
import warnings
from pathlib import Path
from typing import Any

import pytest

from streams import eager
from tests.helpers import unstarted_worker


def test_a_coroutine_that_never_waits_runs_in_the_callers_task() -> None:
    async def record() -> tuple[Any, str]:
        return asyncio.current_task(), "done"

    async def main() -> None:
        done, (task, value) = eager.start(record())
        assert done and value == "done"
        assert task is asyncio.current_task()

    asyncio.run(main())


def test_the_rest_of_a_waiting_coroutine_resumes_where_it_stopped() -> None:
    steps: list[str] = []

    async def record(gate: asyncio.Future[int]) -> int:
        steps.append("before")
        value = await gate
        steps.append("after")
        await asyncio.sleep(0)  # a bare yield goes through too
        return value + 1

    async def main() -> None:
        gate: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        done, rest = eager.start(record(gate))
        assert not done and steps == ["before"]
        task = asyncio.ensure_future(rest)
        await asyncio.sleep(0.01)
        assert steps == ["before"] and not task.done()
        gate.set_result(41)
        assert await task == 42
        assert steps == ["before", "after"]

    asyncio.run(main())


def test_errors_are_raised_where_they_happen() -> None:
    async def fails_at_once() -> None:
        raise ValueError("before any wait")

    async def fails_later(gate: asyncio.Future[None]) -> None:
        await gate
        raise KeyError("after the wait")

    async def main() -> None:
        with pytest.raises(ValueError, match="before any wait"):
            eager.start(fails_at_once())
        gate: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        done, rest = eager.start(fails_later(gate))
        assert not done
        gate.set_result(None)
        with pytest.raises(KeyError, match="after the wait"):
            await rest

    asyncio.run(main())


def test_cancelling_the_rest_cancels_the_coroutine_inside() -> None:
    cleaned: list[bool] = []

    async def record(gate: asyncio.Future[None]) -> None:
        try:
            await gate
        finally:
            cleaned.append(True)

    async def main() -> None:
        gate: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        _, rest = eager.start(record(gate))
        task = asyncio.ensure_future(rest)
        await asyncio.sleep(0)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert cleaned == [True]
        assert gate.cancelled()  # the coroutine's own await was cancelled, as in a task

    asyncio.run(main())


def _consumer(tmp_path: Path) -> Any:
    """The worker's Faust consumer, not started (nothing here talks to a broker)."""
    return unstarted_worker(tmp_path, "t-eager.").app.consumer


def test_a_record_that_does_not_wait_makes_no_task(tmp_path: Path) -> None:
    consumer = _consumer(tmp_path)
    handled: list[int] = []

    async def callback(offset: int) -> None:
        handled.append(offset)

    async def main() -> None:
        tasks = len(asyncio.all_tasks())
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # the unused suspend_flow.wait() is closed
            for offset in range(100):
                await consumer.wait_first(callback(offset), consumer.suspend_flow.wait())
        assert handled == list(range(100))
        assert len(asyncio.all_tasks()) == tasks

    consumer.loop.run_until_complete(main())


def test_a_record_that_waits_is_still_abandoned_when_the_flow_stops(tmp_path: Path) -> None:
    """A rebalance stops the flow (`Consumer.stop_flow`) while a record waits for room in
    its stream's buffer: Faust's fetch loop leaves that record, as it always did."""
    consumer = _consumer(tmp_path)
    reached: list[str] = []

    async def callback(room: asyncio.Event) -> None:
        reached.append("started")
        await room.wait()
        reached.append("put")

    async def main() -> None:
        room = asyncio.Event()
        suspended = consumer.suspend_flow.wait()
        race = asyncio.ensure_future(consumer.wait_first(callback(room), suspended))
        await asyncio.sleep(0.01)
        assert reached == ["started"] and not race.done()
        consumer.stop_flow()
        result = await asyncio.wait_for(race, timeout=2)
        assert result.done == [suspended]
        room.set()
        await asyncio.sleep(0.01)
        assert reached == ["started"]  # abandoned, never put

        # and with the flow running, a record that waits is handled once it can go on
        consumer.resume_flow()
        room.clear()
        race = asyncio.ensure_future(
            consumer.wait_first(callback(room), consumer.suspend_flow.wait())
        )
        await asyncio.sleep(0.01)
        room.set()
        await asyncio.wait_for(race, timeout=2)
        assert reached == ["started", "started", "put"]

    consumer.loop.run_until_complete(main())  # Faust's events belong to the app's loop
