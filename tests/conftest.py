"""Real Kafka and Redis for the integration tests.

Order of preference: services named by VIGIL_KAFKA_BOOTSTRAP / VIGIL_REDIS_URL; else
testcontainers when a Docker engine answers; else the project's own launcher (Kafka jars
from Maven Central, redis-server from the machine). With VIGIL_REQUIRE_SERVICES=1 (CI) a
service that can't be had fails the run instead of skipping it.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from streams import launcher
from tests.helpers import WorkerProcess, unavailable


@dataclass(frozen=True)
class Services:
    kafka_bootstrap: str
    redis_url: str


def _docker_available() -> bool:
    try:
        import docker

        docker.from_env(timeout=3).ping()
        return True
    except Exception:
        return False


@pytest.fixture(scope="session")
def services(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Services]:
    try:
        found = launcher.configured(timeout_s=30)
    except launcher.ServiceError as exc:
        unavailable(str(exc))
    if found is not None:
        yield Services(*found)
        return
    if _docker_available():
        from testcontainers.kafka import KafkaContainer
        from testcontainers.redis import RedisContainer

        with KafkaContainer().with_kraft() as kafka, RedisContainer() as redis:
            host = redis.get_container_host_ip()
            yield Services(
                kafka.get_bootstrap_server(),
                f"redis://{host}:{redis.get_exposed_port(6379)}/0",
            )
        return
    try:
        local = launcher.start(tmp_path_factory.mktemp("services"))
    except launcher.ServiceError as exc:
        unavailable(str(exc))
    try:
        yield Services(local.kafka_bootstrap, local.redis_url)
    finally:
        local.stop()


@pytest.fixture
def prefix() -> str:
    return f"t{uuid.uuid4().hex[:10]}."


@pytest.fixture(scope="module")
def worker(services: Services, tmp_path_factory: pytest.TempPathFactory) -> Iterator[WorkerProcess]:
    """One `vigil worker` process with a prefix of its own, shared by a test module."""
    log = Path(tmp_path_factory.mktemp("worker")) / "worker.log"
    with WorkerProcess.start(services, f"w{uuid.uuid4().hex[:10]}.", log) as proc:
        yield proc
