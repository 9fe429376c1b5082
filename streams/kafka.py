"""Kafka client settings shared by the worker, the simulator and the CLI."""

from __future__ import annotations

import inspect
import ssl
import sys
from typing import Any

from streams import eager
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


def faust_transport(app: Any, settings: Settings) -> Any:
    """Faust's aiokafka transport, with the worker's consumer fetching in
    `fetch_max_wait_ms` / `fetch_min_bytes` steps (Faust itself passes aiokafka no
    `fetch_min_bytes`, so 1 byte, and a fixed 1.5 s wait).

    Measured on 2 cores (BENCHMARKS.md, "Change: a load generator that leaves the worker
    its core; fetch sizes" and "Change: larger vitals batches; fetch sizes by default"):
    with Faust's values every fetch under live traffic comes back at once with a few
    records, and a parse-only Faust agent spent 72 % of a core at 1,444 events/s on that
    loop, 26 % with 64 KiB / 20 ms. With the defaults here a worker kept up with 3,500
    live events/s where it fell behind with Faust's, for a backlog drain within the
    machine's noise of Faust's."""
    from faust.transport.drivers import aiokafka as driver
    from mode.services import WaitResults

    class ConsumerThread(driver.AIOKafkaConsumerThread):
        def _create_worker_consumer(self, transport: Any) -> Any:
            consumer = super()._create_worker_consumer(transport)
            # read by AIOKafkaConsumer.start() when it builds its Fetcher (aiokafka pinned;
            # tests/integration/test_worker_fetch.py checks the fetcher got them)
            consumer._fetch_min_bytes = settings.fetch_min_bytes
            consumer._fetch_max_wait_ms = settings.fetch_max_wait_ms
            return consumer

    class Consumer(driver.Consumer):
        def _new_consumer_thread(self) -> driver.AIOKafkaConsumerThread:
            return ConsumerThread(self, loop=self.loop, beacon=self.beacon)

        async def wait_first(self, *coros: Any, timeout: Any = None) -> Any:
            """For each fetched record Faust's fetch loop (`Consumer._drain_messages`)
            awaits `wait_first(callback(message), self.suspend_flow.wait())`: four tasks
            and an `asyncio.wait`, so that a rebalance that stops the flow can abandon a
            record whose stream buffer is full. The callback is started here in the
            fetch loop's own task instead (`streams.eager`); only when it has to wait
            does Faust's race run, with the rest of it. While the flow is stopped, and for
            every other caller, this is Faust's own."""
            if (
                len(coros) != 2
                or timeout is not None
                or self.suspend_flow.is_set()
                or not (inspect.iscoroutine(coros[0]) and inspect.iscoroutine(coros[1]))
            ):
                return await super().wait_first(*coros, timeout=timeout)
            callback, suspended = coros
            done, result = eager.start(callback)
            if not done:
                return await super().wait_first(result, suspended)
            suspended.close()
            return WaitResults([callback], [result], False)

    class Producer(driver.Producer):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            buffer = self.buffer
            if not self.app.conf.producer_threaded:
                # Faust's fetch loop awaits `buffer.wait_until_ebb()` for every record, for
                # tables whose changelog records wait in this buffer; its size check reads
                # a setting through Faust's settings registry each time (2 % of a worker's
                # main thread in a backlog drain, BENCHMARKS.md "Faust's per-record work
                # trimmed"). The worker produces through its own producer, so the buffer
                # stays empty; the check is the same, on the queue itself.
                pending, flush = buffer.pending, buffer.wait_until_ebb

                async def wait_until_ebb() -> None:
                    if pending.qsize() > buffer.max_messages:
                        await flush()

                buffer.wait_until_ebb = wait_until_ebb  # type: ignore[method-assign]

    transport = type("Transport", (driver.Transport,), {"Consumer": Consumer, "Producer": Producer})
    return transport(app.conf.broker_consumer, app)


def raw_schema() -> Any:
    """A Faust schema for topics read as raw bytes, whose events carry the record's key
    and value as they are.

    Faust's own schema, with the "raw" serializer, still passes every key and value
    through its codec registry and looks the `Event` class up in the app's settings for
    each record: 3.3 % of a worker's main thread in a backlog drain, beside the 3.6 % that
    building the event itself takes (BENCHMARKS.md, "Faust's per-record work trimmed").
    Decoding is the pipelines' own business (`streams.deadletters.parse_record`), so a
    malformed value becomes a dead letter there, not a decode error here."""
    import faust

    class RawSchema(faust.Schema):
        def compile(self, app: Any, **_: Any) -> Any:
            event = app.conf.Event

            async def decode(message: Any, *, propagate: bool = False) -> Any:
                return event(app, message.key, message.value, message.headers, message)

            return decode

    return RawSchema(key_serializer="raw", value_serializer="raw")


def lean_monitor() -> Any:
    """Faust's default sensor, keeping per event only what Faust itself reads back.

    Faust calls its `Monitor` four times for every record (in, into the stream, out of
    it, acked): counters, timings and a state dict for its own web statistics, which the
    worker does not serve (its metrics are Prometheus', `streams/metrics.py`). In a
    backlog drain those calls were about 4 % of the worker's main thread (BENCHMARKS.md,
    "Throughput measured on the whole backlog"). What stays is the one thing Faust reads: when a
    partition's stream last took an event, which its slow-processing check compares with
    the partition's highwater; end offsets and commits reach the monitor by direct calls
    and are kept as they are."""
    from time import monotonic

    from faust.sensors.monitor import Monitor

    class LeanMonitor(Monitor):
        def on_message_in(self, tp: Any, offset: int, message: Any) -> None:
            pass

        def on_stream_event_in(self, tp: Any, offset: int, stream: Any, event: Any) -> None:
            self.stream_inbound_time[tp] = monotonic()

        def on_stream_event_out(
            self, tp: Any, offset: int, stream: Any, event: Any, state: Any = None
        ) -> None:
            pass

        def on_message_out(self, tp: Any, offset: int, message: Any) -> None:
            pass

    return LeanMonitor()


def faust_worker(app: Any, loglevel: str) -> Any:
    """Faust's worker for `app`, as a service runs it: without its terminal spinner, and
    with the consumer thread getting the GIL within 1 ms.

    At `--loglevel warning` and above Faust keeps a progress spinner and, for it, sets the
    root logger to DEBUG, so every debug call in aiokafka and Faust (one per produced
    record, one per partition per fetch) built a LogRecord that no handler printed: 2-3 %
    of a worker's samples in py-spy (BENCHMARKS.md, "Change: larger vitals batches").
    A service has no terminal to spin in.

    Faust runs aiokafka's fetcher in a thread of its own, which waits for the GIL while
    the main thread scores a batch; Python hands it over after 5 ms by default. At 1 ms a
    worker's p99 at 2,700 live events/s was 307 / 371 ms against 418 / 836, with the same
    backlog rate (same section)."""
    import faust

    sys.setswitchinterval(0.001)
    worker = faust.Worker(app, loglevel=loglevel, quiet=True)
    worker.spinner = None
    return worker
