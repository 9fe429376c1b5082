"""The Kafka and Redis one benchmark run uses, and a fresh topic prefix per measurement.

The configured services (VIGIL_KAFKA_BOOTSTRAP and VIGIL_REDIS_URL) when both are set,
else a broker and a redis-server started by `streams.launcher` for this run only. Every
measurement gets its own prefix, so its topics, consumer group and Redis keys start empty
and no measurement reads another's state.
"""

from __future__ import annotations

import shutil
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import redis
from kafka.admin import NewTopic

from streams import launcher, topics
from streams.kafka import admin_client
from streams.settings import Settings


@dataclass
class Services:
    bootstrap: str
    redis_url: str
    kafka_version: str
    local: bool
    prefixes: list[str] = field(default_factory=list)
    """Every prefix handed out, so that a run on configured services can clean up."""

    def fresh(
        self,
        label: str,
        create_topics: bool = True,
        configs: dict[str, dict[str, str]] | None = None,
    ) -> Settings:
        """Settings with a new prefix and, unless told not to, its topics created (12
        partitions each by default); `configs` gives topic configs by unprefixed name."""
        prefix = f"bench-{label}-{uuid.uuid4().hex[:6]}."
        self.prefixes.append(prefix)
        settings = Settings(
            kafka_bootstrap=self.bootstrap, redis_url=self.redis_url, topic_prefix=prefix
        )
        if configs:
            admin = admin_client(settings)
            try:
                admin.create_topics(
                    [
                        NewTopic(
                            settings.topic(name),
                            settings.topic_partitions,
                            settings.topic_replication,
                            topic_configs=config,
                        )
                        for name, config in configs.items()
                    ]
                )
            finally:
                admin.close()
        if create_topics:
            topics.ensure_topics(settings)
        return settings

    def redis(self) -> redis.Redis:
        return redis.Redis.from_url(self.redis_url)

    def redis_version(self) -> str:
        client = self.redis()
        try:
            return str(client.info("server")["redis_version"])
        finally:
            client.close()

    def clean_up(self) -> None:
        """Delete this run's topics and Redis keys (only needed on configured services)."""
        client = self.redis()
        admin = admin_client(Settings(kafka_bootstrap=self.bootstrap))
        try:
            names = [t for t in admin.list_topics() if t.startswith(tuple(self.prefixes))]
            if names:
                admin.delete_topics(names)
            for prefix in self.prefixes:
                keys = list(client.scan_iter(match=f"vigil:{prefix}*", count=1000))
                for start in range(0, len(keys), 1000):
                    client.unlink(*keys[start : start + 1000])
        finally:
            admin.close()
            client.close()

    def remove_faust_dirs(self) -> None:
        """The workers' Faust data folders (one per consumer group, under the temp dir)."""
        for prefix in self.prefixes:
            faust_dir = Path(tempfile.gettempdir()) / "vigil-faust" / f"{prefix}vigil-worker"
            shutil.rmtree(faust_dir, ignore_errors=True)


def _broker_version(bootstrap: str) -> str:
    """What a configured broker reports (kafka-python's API-version probe)."""
    from kafka import KafkaConsumer

    consumer = KafkaConsumer(bootstrap_servers=bootstrap)
    try:
        return "configured, API " + ".".join(str(v) for v in consumer.config["api_version"])
    finally:
        consumer.close()


@contextmanager
def services() -> Iterator[Services]:
    """The configured services, or local ones stopped (with their data) on the way out."""
    found = launcher.configured(timeout_s=10)
    if found is not None:
        bootstrap, redis_url = found
        configured = Services(bootstrap, redis_url, _broker_version(bootstrap), local=False)
        try:
            yield configured
        finally:
            configured.clean_up()
            configured.remove_faust_dirs()
        return
    work = Path(tempfile.mkdtemp(prefix="vigil-bench-"))
    local = launcher.start(work)
    started = Services(local.kafka_bootstrap, local.redis_url, launcher.KAFKA_VERSION, local=True)
    try:
        yield started
    finally:
        local.stop()
        started.remove_faust_dirs()
        shutil.rmtree(work, ignore_errors=True)
