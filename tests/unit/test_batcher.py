"""The dynamic batcher, tested the way Triton tests its own: requests that arrive together
share a batch, a lone request waits no longer than the maximum delay, the queue is bounded,
and failures are isolated to the request that caused them."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from models.batcher import DynamicBatcher

SLACK_S = 0.05
"""Generous: the test machine is small and shared."""


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, timeout=20))


class Recorder:
    """A batch function that remembers its calls."""

    def __init__(self, fail_on: set[int] | None = None) -> None:
        self.calls: list[list[int]] = []
        self.fail_on = fail_on or set()

    def __call__(self, items: list[int]) -> list[int]:
        self.calls.append(list(items))
        if self.fail_on & set(items):
            raise ValueError(f"poisoned item in {items}")
        return [i * 10 for i in items]


@pytest.mark.parametrize("n", [1, 5, 8])
def test_concurrent_requests_up_to_max_batch_share_one_batch(n) -> None:
    fn = Recorder()

    async def main():
        async with DynamicBatcher(fn, max_batch=8, max_wait_ms=100, max_queue=64) as b:
            return await asyncio.gather(*(b.submit(i) for i in range(n))), b

    results, b = run(main())
    assert results == [i * 10 for i in range(n)]
    assert fn.calls == [list(range(n))]
    assert b.calls == 1 and b.batch_sizes == {n: 1}


@pytest.mark.parametrize(("n", "max_batch"), [(9, 8), (20, 8), (32, 8)])
def test_more_requests_than_max_batch_are_split_into_full_batches(n, max_batch) -> None:
    fn = Recorder()

    async def main():
        async with DynamicBatcher(fn, max_batch, max_wait_ms=100, max_queue=64) as b:
            return await asyncio.gather(*(b.submit(i) for i in range(n)))

    assert run(main()) == [i * 10 for i in range(n)]
    assert len(fn.calls) == -(-n // max_batch)
    assert [len(c) for c in fn.calls[:-1]] == [max_batch] * (len(fn.calls) - 1)
    assert sorted(i for c in fn.calls for i in c) == list(range(n))


def test_full_batch_runs_at_once_without_waiting_for_max_wait() -> None:
    async def main():
        async with DynamicBatcher(Recorder(), max_batch=4, max_wait_ms=1000, max_queue=8) as b:
            t0 = time.perf_counter()
            await asyncio.gather(*(b.submit(i) for i in range(4)))
            return time.perf_counter() - t0

    assert run(main()) < 0.5


def test_single_request_waits_about_max_wait_and_no_longer() -> None:
    async def main():
        async with DynamicBatcher(Recorder(), max_batch=8, max_wait_ms=100, max_queue=8) as b:
            latencies = []
            for i in range(3):
                t0 = time.perf_counter()
                assert await b.submit(i) == i * 10
                latencies.append(time.perf_counter() - t0)
            return latencies

    for latency in run(main()):
        assert 0.1 - 0.005 <= latency <= 0.1 + SLACK_S


def test_max_wait_counts_from_the_oldest_request_of_the_batch() -> None:
    """A late joiner rides along with the batch that is about to close; it does not push
    the deadline of the earlier request."""
    fn = Recorder()

    async def main():
        async with DynamicBatcher(fn, max_batch=8, max_wait_ms=100, max_queue=8) as b:
            first = asyncio.create_task(b.submit(1))
            await asyncio.sleep(0.06)
            t0 = time.perf_counter()
            second = await b.submit(2)
            return await first, second, time.perf_counter() - t0

    first, second, late_wait = run(main())
    assert (first, second) == (10, 20)
    assert fn.calls == [[1, 2]]
    assert late_wait < 0.1 - 0.06 + SLACK_S


def test_queue_is_bounded_and_submitters_beyond_it_wait() -> None:
    release = threading.Event()
    computing = threading.Event()

    def slow(items: list[int]) -> list[int]:
        computing.set()
        release.wait(5)
        return items

    async def main():
        async with DynamicBatcher(slow, max_batch=2, max_wait_ms=1, max_queue=3) as b:
            waited: dict[int, float] = {}

            async def client(i: int) -> None:
                t0 = time.perf_counter()
                await b.submit(i)
                waited[i] = time.perf_counter() - t0

            first = [asyncio.create_task(client(i)) for i in range(2)]
            await asyncio.to_thread(computing.wait, 5)  # a batch of 2 is computing
            later = [asyncio.create_task(client(i)) for i in range(2, 7)]
            await asyncio.sleep(0.2)
            queued, blocked = b.queued, b.blocked
            release.set()
            await asyncio.gather(*first, *later)
            return queued, blocked, waited, b

    queued, blocked, waited, b = run(main())
    assert queued == 3  # the queue held its maximum ...
    assert blocked == 2  # ... and the two submitters beyond it waited outside
    assert all(waited[i] >= 0.2 for i in range(2, 7))
    assert b.calls == 4 and sorted(b.batch_sizes.elements()) == [1, 2, 2, 2]


def test_poisoned_item_fails_alone_and_the_others_get_results() -> None:
    fn = Recorder(fail_on={5})

    async def main():
        async with DynamicBatcher(fn, max_batch=8, max_wait_ms=50, max_queue=16) as b:
            return await asyncio.gather(*(b.submit(i) for i in range(8)), return_exceptions=True)

    results = run(main())
    assert isinstance(results[5], ValueError)
    assert [r for i, r in enumerate(results) if i != 5] == [i * 10 for i in range(8) if i != 5]
    assert [5] in fn.calls
    assert len(fn.calls) == 1 + 2 + 2 + 2  # 8 -> 4+4 -> 2+2 -> 1+1 along the poisoned half


def test_out_of_memory_on_large_batches_is_retried_smaller() -> None:
    sizes: list[int] = []

    def fits_two(items: list[int]) -> list[int]:
        sizes.append(len(items))
        if len(items) > 2:
            raise RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return [i + 1 for i in items]

    async def main():
        async with DynamicBatcher(fits_two, max_batch=8, max_wait_ms=50, max_queue=16) as b:
            return await asyncio.gather(*(b.submit(i) for i in range(8))), b

    results, b = run(main())
    assert results == [i + 1 for i in range(8)]
    assert sizes == [8, 4, 2, 2, 4, 2, 2]
    assert b.splits == 3 and b.failed == 0


def test_cancelled_caller_is_not_computed_and_stop_drains_the_queue() -> None:
    fn = Recorder()

    async def main():
        b = DynamicBatcher(fn, max_batch=8, max_wait_ms=100, max_queue=8)
        await b.start()
        gone = asyncio.create_task(b.submit(1))
        kept = asyncio.create_task(b.submit(2))
        await asyncio.sleep(0.01)
        gone.cancel()
        await b.stop()  # closes the open batch now instead of waiting out max_wait
        with pytest.raises(RuntimeError):
            await b.submit(3)
        return await kept

    assert run(main()) == 20
    assert fn.calls == [[2]]
