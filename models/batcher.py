"""Dynamic batching for a model on an accelerator, as Triton's dynamic batcher does it.

A GPU scores 32 images in about the time it scores one, so requests from many callers
(one per imaging event) are gathered into one call: a batch closes when it holds
`max_batch` requests or `max_wait_ms` after its oldest request arrived, whichever comes
first, so a lone request waits at most `max_wait_ms` and a busy stream gets full batches.
One batch runs at a time, in a worker thread, so the event loop keeps consuming while the
model computes; what arrives meanwhile forms the next batch.

Backpressure: at most `max_queue` requests wait. Further callers wait in `submit` until
there is room, so a slow model slows the consumer instead of growing memory.

Failures: when the function raises for a batch of several requests, the batch is split
in halves and each half retried, down to single requests. This is the path of a CUDA
out-of-memory error (a smaller batch fits) and of one poisoned input (only its own caller
gets the exception; the others get their results).
"""

from __future__ import annotations

import asyncio
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from types import TracebackType
from typing import Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")


@dataclass(eq=False)
class _Request(Generic[T, R]):
    item: T
    arrived: float
    future: asyncio.Future[R] = field(repr=False)


class DynamicBatcher(Generic[T, R]):
    def __init__(
        self,
        fn: Callable[[list[T]], list[R]],
        max_batch: int,
        max_wait_ms: float,
        max_queue: int,
    ) -> None:
        if max_batch < 1 or max_queue < 1 or max_wait_ms < 0:
            raise ValueError("max_batch and max_queue must be positive, max_wait_ms not negative")
        self.fn = fn
        self.max_batch = max_batch
        self.max_wait_s = max_wait_ms / 1000
        self.max_queue = max_queue
        self.calls = 0
        """Calls of `fn`, retries of split batches included."""
        self.batch_sizes: Counter[int] = Counter()
        """How many calls of `fn` had each batch size."""
        self.splits = 0
        """Failed batches retried in halves."""
        self.failed = 0
        """Requests answered with an exception."""
        self.blocked = 0
        """Submits that found the queue full and waited for room (backpressure)."""
        self._pending: deque[_Request[T, R]] = deque()
        self._running: list[_Request[T, R]] = []
        self._room = asyncio.Semaphore(max_queue)
        self._arrived = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closing = False

    @property
    def queued(self) -> int:
        """Requests waiting for a batch (not those being computed)."""
        return len(self._pending)

    async def start(self) -> None:
        if self._task is not None:
            raise RuntimeError("batcher already started")
        self._closing = False
        self._task = asyncio.create_task(self._run(), name="dynamic-batcher")

    async def stop(self) -> None:
        """Stop taking requests, finish every queued one, then return."""
        self._closing = True
        self._arrived.set()
        if self._task is not None:
            await self._task
            self._task = None

    async def __aenter__(self) -> DynamicBatcher[T, R]:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    async def submit(self, item: T) -> R:
        """The result of `fn` for `item`, computed in some batch; waits for room first
        when `max_queue` requests are already waiting."""
        if self._task is None or self._closing:
            raise RuntimeError("batcher is not running")
        if self._room.locked():
            self.blocked += 1
        await self._room.acquire()
        if self._closing:
            self._room.release()
            raise RuntimeError("batcher is not running")
        loop = asyncio.get_running_loop()
        request: _Request[T, R] = _Request(item, loop.time(), loop.create_future())
        self._pending.append(request)
        self._arrived.set()
        return await request.future

    async def _run(self) -> None:
        try:
            await self._loop()
        finally:  # cancelled with the event loop: no caller may wait for ever
            for request in (*self._running, *self._pending):
                if not request.future.done():
                    request.future.set_exception(RuntimeError("batcher stopped"))
            self._pending.clear()

    async def _loop(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            while not self._pending:
                if self._closing:
                    return
                self._arrived.clear()
                await self._arrived.wait()
            deadline = self._pending[0].arrived + self.max_wait_s
            while len(self._pending) < self.max_batch and not self._closing:
                remaining = deadline - loop.time()
                if remaining <= 0:
                    break
                self._arrived.clear()
                try:
                    async with asyncio.timeout(remaining):
                        await self._arrived.wait()
                except TimeoutError:
                    break
            batch = []
            while self._pending and len(batch) < self.max_batch:
                request = self._pending.popleft()
                self._room.release()
                if not request.future.cancelled():  # its caller gave up: no work for it
                    batch.append(request)
            if batch:
                self._running = batch
                await self._execute(batch)
                self._running = []

    async def _execute(self, batch: list[_Request[T, R]]) -> None:
        self.calls += 1
        self.batch_sizes[len(batch)] += 1
        try:
            results = await asyncio.to_thread(self.fn, [r.item for r in batch])
            if len(results) != len(batch):
                raise ValueError(f"batch function gave {len(results)} results for {len(batch)}")
        except Exception as exc:
            if len(batch) == 1:
                self.failed += 1
                if not batch[0].future.done():
                    batch[0].future.set_exception(exc)
                return
            self.splits += 1
            half = len(batch) // 2
            await self._execute(batch[:half])
            await self._execute(batch[half:])
            return
        for request, result in zip(batch, results, strict=True):
            if not request.future.done():  # done: its caller was cancelled meanwhile
                request.future.set_result(result)
