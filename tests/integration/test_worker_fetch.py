"""The worker's Kafka consumer fetches in `fetch_max_wait_ms` / `fetch_min_bytes` steps.

Faust builds its aiokafka consumer without a `fetch_min_bytes` and with a fixed 1.5 s wait;
`streams.kafka.faust_transport` sets both from the settings. The values travel through
private attributes of the pinned aiokafka, so this checks them on a consumer started
against the real broker, where aiokafka's fetcher reads them.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from streams.app import Worker
from streams.settings import Settings
from tests.conftest import Services


def test_the_worker_consumer_fetches_with_the_configured_wait_and_size(
    services: Services, prefix: str, tmp_path: Path
) -> None:
    settings = Settings(
        kafka_bootstrap=services.kafka_bootstrap,
        redis_url=services.redis_url,
        topic_prefix=prefix,
        model_dir=tmp_path,
        fetch_min_bytes=12_345,
        fetch_max_wait_ms=7,
    )
    worker = Worker(settings)

    async def started_fetcher() -> tuple[int, int]:
        consumer = worker.app.consumer._thread._create_consumer(asyncio.get_running_loop())
        await consumer.start()
        try:
            fetcher = consumer._fetcher
            return fetcher._fetch_min_bytes, fetcher._fetch_max_wait_ms
        finally:
            await consumer.stop()

    assert asyncio.run(started_fetcher()) == (12_345, 7)
