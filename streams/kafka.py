"""Kafka client settings shared by the worker, the simulator and the CLI."""

from __future__ import annotations

import ssl
from typing import Any

from streams.settings import Settings


def client_options(settings: Settings) -> dict[str, Any]:
    """kafka-python / aiokafka keyword arguments for bootstrap, TLS and SASL."""
    opts: dict[str, Any] = {
        "bootstrap_servers": settings.kafka_bootstrap,
        "security_protocol": settings.kafka_security_protocol,
    }
    if settings.kafka_security_protocol in ("SSL", "SASL_SSL"):
        opts["ssl_context"] = ssl.create_default_context(
            cafile=str(settings.kafka_ssl_cafile) if settings.kafka_ssl_cafile else None
        )
    if settings.kafka_sasl_mechanism:
        opts["sasl_mechanism"] = settings.kafka_sasl_mechanism
        opts["sasl_plain_username"] = settings.kafka_sasl_username
        opts["sasl_plain_password"] = settings.kafka_sasl_password
    return opts


def aiokafka_options(settings: Settings) -> dict[str, Any]:
    """The same options under aiokafka's names (it has no default for a missing SASL key)."""
    opts = client_options(settings)
    opts.setdefault("sasl_mechanism", "PLAIN")
    return opts


def admin_client(settings: Settings) -> Any:
    from kafka import KafkaAdminClient

    return KafkaAdminClient(request_timeout_ms=10_000, **client_options(settings))


def faust_credentials(settings: Settings) -> Any:
    import faust

    if settings.kafka_sasl_mechanism:
        return faust.SASLCredentials(
            username=settings.kafka_sasl_username,
            password=settings.kafka_sasl_password,
            mechanism=settings.kafka_sasl_mechanism,
            ssl_context=client_options(settings).get("ssl_context"),
        )
    if settings.kafka_security_protocol == "SSL":
        return faust.SSLCredentials(client_options(settings)["ssl_context"])
    return None
