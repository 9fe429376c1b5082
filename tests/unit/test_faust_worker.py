"""The worker process's Faust worker leaves the root logger at the level it was given."""

from __future__ import annotations

import logging

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
