"""Sustained vitals throughput of one worker against raw Kafka and bare Faust, in one run.

    python -m bench.vitals_throughput --events 30000

Both sides read the same pre-loaded topic (12 partitions, simulated ward events) from the
same local broker: the baseline is an aiokafka consumer that produces every record to
another topic and waits for the acks (the ceiling for any consume-produce service here);
the bare-Faust ceiling is a parse-only agent with the same batching (`bench/bare_faust.py`);
Vigil is a real `vigil worker` process doing the whole vitals path. Prints JSON and a
table; the ratios are the numbers to compare across machines.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from kafka import KafkaProducer
from kafka.admin import NewTopic

from streams import launcher, topics
from streams.kafka import admin_client
from streams.settings import Settings
from streams.simulator import ward_feed


def preload(bootstrap: str, topic: str, n: int, patients: int) -> None:
    hours = n * 60 / patients / 3600 + 0.1
    start = datetime.now(UTC) - timedelta(hours=hours)
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=20)
    for i, event in enumerate(ward_feed(patients, 0.3, start, hours, 60, seed=1)):
        if i == n:
            break
        producer.send(topic, key=event["patient_id"].encode(), value=orjson.dumps(event))
    producer.flush()
    producer.close()


async def passthrough(bootstrap: str, source: str, sink: str, n: int) -> float:
    """Seconds to consume n records and produce each one, acks awaited per fetched batch."""
    consumer = AIOKafkaConsumer(
        source,
        bootstrap_servers=bootstrap,
        group_id=f"bench-{uuid.uuid4().hex[:6]}",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=2)
    await consumer.start()
    await producer.start()
    seen, started = 0, None
    try:
        while seen < n:
            batches = await consumer.getmany(timeout_ms=500, max_records=500)
            if started is None and batches:
                started = time.perf_counter()
            pending = [
                await producer.send(sink, key=r.key, value=r.value)
                for records in batches.values()
                for r in records
            ]
            await asyncio.gather(*pending)
            seen += len(pending)
            await consumer.commit()
        return time.perf_counter() - (started or time.perf_counter())
    finally:
        await consumer.stop()
        await producer.stop()


def bare_faust(bootstrap: str, topic: str, n: int, log: Path) -> float:
    """Seconds for a parse-only Faust agent to consume n records, from its first batch."""
    env = {**os.environ, "VIGIL_KAFKA_BOOTSTRAP": bootstrap}
    with log.open("ab") as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "bench.bare_faust", topic],
            env=env, stdout=subprocess.PIPE, stderr=err, text=True,
        )  # fmt: skip
    try:
        assert proc.stdout is not None
        first: tuple[float, int] | None = None
        for line in proc.stdout:
            _, count, at = line.split()
            if first is None:
                first = (float(at), int(count))
            if int(count) >= n:
                return (float(at) - first[0]) * n / (n - first[1])
        raise RuntimeError(f"bare Faust agent exited early: {log.read_text()[-1500:]}")
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def consumed(url: str, topic: str) -> float:
    text = httpx.get(f"{url}/metrics", timeout=5).text
    match = re.search(rf'^vigil_events_in_total{{topic="{re.escape(topic)}"}} (\S+)$', text, re.M)
    return float(match.group(1)) if match else 0.0


def vigil_worker(bootstrap: str, redis_url: str, prefix: str, n: int, log: Path) -> float:
    """Seconds for one worker to process n records, from its first consumed batch."""
    port = launcher.free_port()
    env = {
        **os.environ,
        "VIGIL_KAFKA_BOOTSTRAP": bootstrap,
        "VIGIL_REDIS_URL": redis_url,
        "VIGIL_TOPIC_PREFIX": prefix,
        "VIGIL_WEB_PORT": str(port),
    }
    url = f"http://127.0.0.1:{port}"
    topic = f"{prefix}{topics.VITALS}"
    with log.open("ab") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "streams.cli", "worker", "--loglevel", "warning"],
            env=env,
            stdout=out,
            stderr=out,
        )
    try:
        first: tuple[float, float] | None = None
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"worker exited: {log.read_text()[-1500:]}")
            try:
                count = consumed(url, topic)
            except httpx.HTTPError:
                count = 0.0
            now = time.perf_counter()
            if first is None and count > 0:
                first = (now, count)
            if count >= n and first is not None:
                return (now - first[0]) * n / (n - first[1])
            time.sleep(0.1)
        raise TimeoutError("worker did not finish in 600 s")
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=30_000)
    parser.add_argument("--patients", type=int, default=200)
    args = parser.parse_args()

    local = None
    bootstrap = os.environ.get("VIGIL_KAFKA_BOOTSTRAP")
    redis_url = os.environ.get("VIGIL_REDIS_URL")
    if not (bootstrap and redis_url):
        local = launcher.start(Path(tempfile.mkdtemp(prefix="vigil-bench-")))
        bootstrap, redis_url = local.kafka_bootstrap, local.redis_url
    try:
        prefix = f"bench-{uuid.uuid4().hex[:6]}."
        settings = Settings(kafka_bootstrap=bootstrap, redis_url=redis_url, topic_prefix=prefix)
        topics.ensure_topics(settings)
        source, sink = settings.topic(topics.VITALS), settings.topic("passthrough")
        admin = admin_client(settings)
        admin.create_topics([NewTopic(sink, settings.topic_partitions, 1)])
        admin.close()
        preload(bootstrap, source, args.events, args.patients)

        baseline_s = asyncio.run(passthrough(bootstrap, source, sink, args.events))
        log = Path(tempfile.gettempdir()) / f"{prefix}worker.log"
        faust_s = bare_faust(bootstrap, source, args.events, log)
        vigil_s = vigil_worker(bootstrap, redis_url, prefix, args.events, log)
    finally:
        if local is not None:
            local.stop()

    result: dict[str, Any] = {
        "events": args.events,
        "patients": args.patients,
        "baseline_passthrough_events_per_s": round(args.events / baseline_s),
        "bare_faust_events_per_s": round(args.events / faust_s),
        "vigil_worker_events_per_s": round(args.events / vigil_s),
        "ratio_vigil_to_passthrough": round(baseline_s / vigil_s, 3),
        "ratio_vigil_to_bare_faust": round(faust_s / vigil_s, 3),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "kafka": launcher.KAFKA_VERSION,
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    print(json.dumps(result, indent=2))
    print("\n| path | events/s |\n| --- | --- |")
    print(f"| raw aiokafka pass-through | {result['baseline_passthrough_events_per_s']} |")
    print(f"| bare Faust agent (parse only) | {result['bare_faust_events_per_s']} |")
    print(f"| vigil worker (vitals path) | {result['vigil_worker_events_per_s']} |")
    print(f"| Vigil / pass-through | {result['ratio_vigil_to_passthrough']} |")
    print(f"| Vigil / bare Faust | {result['ratio_vigil_to_bare_faust']} |")


if __name__ == "__main__":
    main()
