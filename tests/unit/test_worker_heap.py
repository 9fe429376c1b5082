"""The worker's cyclic collector: startup objects frozen, and a batch's worth of live
objects allocated without a collector pass."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from streams.cli import GC_YOUNG_THRESHOLD, settle_heap


@pytest.fixture
def restored_collector() -> Iterator[None]:
    before = gc.get_threshold()
    try:
        yield
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)


def _young_passes_while_allocating(count: int) -> int:
    """Young-generation passes while `count` dicts are allocated and kept alive, as a
    batch's events and scores are."""
    gc.collect()
    before = gc.get_stats()[0]["collections"]
    kept = [{"event": i} for i in range(count)]
    passes = gc.get_stats()[0]["collections"] - before
    del kept
    return passes


def test_a_batch_of_live_objects_runs_no_collector_pass(restored_collector: None) -> None:
    batch = 20_000  # more than a batch of 2,000 events holds, well under the threshold
    assert _young_passes_while_allocating(batch) > 0  # Python's default: every 700
    settle_heap()
    assert gc.get_threshold()[0] == GC_YOUNG_THRESHOLD
    assert _young_passes_while_allocating(batch) == 0


def test_startup_objects_are_frozen_out_of_the_collector(restored_collector: None) -> None:
    loaded = [{"model": i} for i in range(1_000)]
    settle_heap()
    assert gc.get_freeze_count() >= len(loaded)
