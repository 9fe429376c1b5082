"""The worker process's Faust worker: the root logger at the level it was given, and the
GIL handed to Faust's consumer thread within 1 ms."""

from __future__ import annotations

import logging
import sys

import faust

from streams.kafka import faust_worker


def test_the_faust_worker_keeps_the_root_logger_at_its_level() -> None:
    # Faust's own worker, at warning, sets the root logger to DEBUG for its spinner, so
    # every debug call in aiokafka and Faust builds a record that nobody prints.
    app = faust.App("test-faust-worker", broker="kafka://localhost:1", web_enabled=False)
    root = logging.Logger("root-probe", logging.WARNING)
    root.addHandler(logging.NullHandler())
    faust_worker(app, "warning").on_setup_root_logger(root, logging.WARNING)
    assert root.level == logging.WARNING
    assert not root.isEnabledFor(logging.DEBUG)


def test_the_faust_worker_hands_the_gil_over_within_a_millisecond() -> None:
    app = faust.App("test-faust-worker-gil", broker="kafka://localhost:1", web_enabled=False)
    before = sys.getswitchinterval()
    try:
        faust_worker(app, "info")
        assert sys.getswitchinterval() == 0.001
    finally:
        sys.setswitchinterval(before)
