"""Run a coroutine in the calling task until it first waits (Python 3.12's eager tasks,
for one coroutine, on 3.11).

Faust's fetcher hands every fetched record to the stream through a coroutine that, while
the stream's buffer has room, never waits; yet each one ran as a task of its own, raced
against three more (`Consumer.wait_first`), which took 14 points of a worker's 73 % of a
core at 2,669 events/s (BENCHMARKS.md, "Records handed over without a task each;
commands packed by hiredis").
`streams.kafka`'s consumer starts the coroutine here and makes a task only of what is
left once it waits. Written by hand: asyncio on 3.11 has no eager start.
"""

from __future__ import annotations

from collections.abc import Coroutine, Generator
from typing import Any


class Rest:
    """The rest of a coroutine that `start` ran until it yielded `future`: awaiting this
    (in a task, or by `await`) resumes it exactly where it stopped."""

    def __init__(self, coro: Coroutine[Any, Any, Any], future: Any) -> None:
        self.coro, self.future = coro, future

    def __await__(self) -> Generator[Any, Any, Any]:
        coro, future = self.coro, self.future
        while True:
            try:
                value = yield future  # to the task that awaits this, as coro yielded it
            except GeneratorExit:
                coro.close()
                raise
            except BaseException as exc:  # cancellation included: the coroutine's to handle
                try:
                    future = coro.throw(exc)
                except StopIteration as stop:
                    return stop.value
            else:
                try:
                    future = coro.send(value)
                except StopIteration as stop:
                    return stop.value


def start(coro: Coroutine[Any, Any, Any]) -> tuple[bool, Any]:
    """Run `coro` in the caller until it returns or first waits: `(True, its result)`, or
    `(False, a Rest to await)`. What it raises before waiting is raised here."""
    try:
        future = coro.send(None)
    except StopIteration as stop:
        return True, stop.value
    return False, Rest(coro, future)
