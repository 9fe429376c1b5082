"""Ceilings beside Vigil, on the same records: raw Kafka, bare Faust, raw Redis.

- raw aiokafka pass-through: consume every record and produce it to another topic,
  awaiting the acks (the ceiling for any consume-produce service on this broker);
- bare Faust: an agent that only parses JSON, in Faust's own `take_events` batches
  (`bench/bare_faust.py`);
- Faust with a worker's I/O: an agent with Vigil's intake that makes the worker's Redis
  round trips and produces a score per patient per batch, without Vigil's computation
  (`bench/bare_faust.py`): what is left between it and Vigil is Vigil's own work;
- Redis, plain: the writes that store the samples (HSET of the event id, ZADD of the
  sample), pipelined per batch, with no feature computation;
- Redis, Vigil's Lua: `FeatureStore.apply_vitals` (one EVALSHA of `update_vitals.lua`
  per patient per batch, pipelined), the first of the worker's two Redis round trips.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import redis.asyncio as aioredis
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from bench.feed import Record
from bench.services import Services
from bench.workers import produce_while_frozen, wait_group_stable
from features.client import connect
from features.samples import VitalsSample
from features.store import FeatureStore
from streams import topics
from streams.events import VitalsObservation
from streams.settings import Settings

Batch = dict[str, list[VitalsSample]]


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


def bare_faust(bootstrap: str, topic: str, n: int, log: Path, io: Settings | None = None) -> float:
    """Seconds for a parse-only Faust agent to consume n records, from its first batch
    (extrapolated over the records of that first batch); with `io`, the agent that also
    does a worker's I/O, in that prefix's Redis namespace and to its alerts topic."""
    env = {**os.environ, "VIGIL_KAFKA_BOOTSTRAP": bootstrap}
    sink: list[str] = []
    if io is not None:
        sink = [io.topic(topics.ALERTS)]
        env |= {"VIGIL_REDIS_URL": io.redis_url, "VIGIL_TOPIC_PREFIX": io.topic_prefix}
    with tempfile.TemporaryDirectory(prefix="bench-bare-") as datadir:
        with log.open("ab") as err:
            proc = subprocess.Popen(
                [sys.executable, "-m", "bench.bare_faust", topic, datadir, *sink],
                env=env, stdout=subprocess.PIPE, stderr=err, text=True,
            )  # fmt: skip
        return _first_to_nth(proc, n, log)


def bare_faust_group(services: Services, records: list[Record], count: int, log: Path) -> float:
    """Seconds for `count` parse-only agents in one consumer group to drain `records`,
    timed as `bench.throughput` times that many workers: started on an empty topic, frozen
    once their group is balanced while the records are produced, then timed from their
    release until together they have taken every record."""
    settings = services.fresh(f"bare{count}")
    topic = settings.topic(topics.VITALS)
    env = {
        **os.environ,
        "VIGIL_KAFKA_BOOTSTRAP": services.bootstrap,
        "BENCH_BARE_APP_ID": settings.app_id,
    }
    with tempfile.TemporaryDirectory(prefix="bench-bare-") as datadir, log.open("ab") as err:
        dirs = [Path(datadir) / str(i) for i in range(count)]  # one per agent, as workers
        for d in dirs:
            d.mkdir()
        procs = [
            subprocess.Popen(
                [sys.executable, "-m", "bench.bare_faust", topic, str(d)],
                env=env,
                stdout=subprocess.PIPE,
                stderr=err,
                text=True,
            )
            for d in dirs
        ]
        try:
            wait_group_stable(settings, count)
            produce_while_frozen(procs, services.bootstrap, topic, records)
            released = time.monotonic()
            return _all_taken(procs, len(records), log) - released
        finally:
            for proc in procs:
                proc.terminate()
                proc.wait(timeout=30)


def _all_taken(procs: list[subprocess.Popen[str]], n: int, log: Path) -> float:
    """The monotonic time (one clock for every process here) of the progress line at which
    the agents' counts add up to n."""
    counts, times = [0] * len(procs), [0.0] * len(procs)
    lock, done = threading.Lock(), threading.Event()

    def follow(i: int, proc: subprocess.Popen[str]) -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            _, count, at = line.split()
            with lock:
                counts[i], times[i] = int(count), float(at)
                if sum(counts) >= n:
                    done.set()
        done.set()  # an agent that exits ends the wait too

    for i, proc in enumerate(procs):
        threading.Thread(target=follow, args=(i, proc), daemon=True).start()
    done.wait(timeout=900)
    with lock:
        if sum(counts) < n:
            raise RuntimeError(
                f"bare Faust agents took {sum(counts)} of {n}: {log.read_text()[-1500:]}"
            )
        return max(times)


def _first_to_nth(proc: subprocess.Popen[str], n: int, log: Path) -> float:
    """Read the agent's progress lines until it has consumed n; stop it either way."""
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


def store_batches(records: list[Record], batch_max: int) -> list[Batch]:
    """The records as the worker's vitals path hands them to the store: validated, in
    batches of `batch_max` in arrival order, grouped by patient."""
    batches: list[Batch] = []
    for start in range(0, len(records), batch_max):
        batch: Batch = {}
        for r in records[start : start + batch_max]:
            obs = VitalsObservation.model_validate_json(r.value)
            batch.setdefault(obs.patient_id, []).append(VitalsSample.from_event(obs))
        batches.append(batch)
    return batches


@dataclass(frozen=True)
class RedisRun:
    """One pass over the batches: wall time, and where the CPU went."""

    seconds: float
    server_cpu_s: float
    """redis-server's CPU time (INFO cpu, user + sys) during the pass."""
    client_cpu_s: float
    """This process's CPU time (redis-py packing and parsing, the Python around it)."""


async def server_cpu(client: aioredis.Redis) -> float:
    info = await client.info("cpu")
    return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])


Writer = Callable[[Batch], Awaitable[object]]


async def _timed(
    redis_url: str, writer: Callable[[aioredis.Redis], Writer], batches: list[Batch]
) -> RedisRun:
    client = connect(redis_url)
    write = writer(client)
    try:
        server, cpu, started = await server_cpu(client), time.process_time(), time.perf_counter()
        for batch in batches:
            await write(batch)
        seconds = time.perf_counter() - started
        return RedisRun(seconds, await server_cpu(client) - server, time.process_time() - cpu)
    finally:
        await client.aclose()


async def redis_plain(redis_url: str, namespace: str, batches: list[Batch]) -> RedisRun:
    """Every sample written with plain pipelined HSET + ZADD, one pipeline per batch: the
    keys and members `update_vitals.lua` writes, without its reads, trimming or features."""

    def writer(client: aioredis.Redis) -> Writer:
        keys = FeatureStore(client, namespace).keys

        async def write(batch: Batch) -> None:
            async with client.pipeline(transaction=False) as pipe:
                for patient_id, samples in batch.items():
                    patient = keys(patient_id)
                    for s in samples:
                        pipe.hset(patient.ids, s.event_id, s.observed_us)
                        pipe.zadd(
                            patient.samples, {s.packed() + s.event_id.encode(): s.observed_us}
                        )
                await pipe.execute()

        return write

    return await _timed(redis_url, writer, batches)


async def redis_lua(redis_url: str, namespace: str, batches: list[Batch]) -> RedisRun:
    """`FeatureStore.apply_vitals` over the batches: dedupe, insert, trim and all 168
    rolling features per patient in Lua, the features parsed back in Python."""

    def writer(client: aioredis.Redis) -> Writer:
        d = Settings()
        store = FeatureStore(client, namespace, d.patient_ttl_h, d.news2_lookback_h, d.history_h)
        return store.apply_vitals

    return await _timed(redis_url, writer, batches)
