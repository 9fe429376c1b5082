"""docker-compose.yml parses and wires the integration environment (no engine here)."""

from __future__ import annotations

from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]


def test_compose_names_the_services_with_health_checks() -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    services = compose["services"]
    assert {"kafka", "redis", "worker", "simulator"} <= services.keys()
    assert services["kafka"]["image"].startswith("apache/kafka:")
    assert "controller" in services["kafka"]["environment"]["KAFKA_PROCESS_ROLES"]
    assert services["redis"]["image"].startswith("redis:")
    for name in ("kafka", "redis", "worker"):
        assert services[name]["healthcheck"]["test"], name
    worker_env = services["worker"]["environment"]
    assert worker_env["VIGIL_KAFKA_BOOTSTRAP"] == "kafka:9092"
    assert worker_env["VIGIL_REDIS_URL"].startswith("redis://redis:")
    assert services["simulator"]["environment"] == worker_env
    assert services["worker"]["depends_on"]["kafka"]["condition"] == "service_healthy"
    assert (ROOT / services["worker"]["build"] / "Dockerfile").exists()
