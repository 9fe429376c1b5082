"""`vigil worker` processes under the benchmark: start, watch through /metrics, stop.

The workers inherit the benchmark's environment, so VIGIL_MODEL_DIR (and any other
VIGIL_* knob) reaches them; without a model directory they score with the NEWS2 fallback.
"""

from __future__ import annotations

import math
import re
import signal
import subprocess
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families

from bench.feed import Record, produce
from streams import launcher, topics
from streams.kafka import admin_client
from streams.settings import Settings

POLL_S = 0.2
"""How often progress is read from /metrics (each read costs the worker a little CPU)."""


def histogram_quantiles(
    buckets: list[tuple[float, float]],
    qs: tuple[float, ...],
    since: list[tuple[float, float]] | None = None,
) -> list[float]:
    """Quantiles of a cumulative histogram ((upper edge, count) in order), of what it
    gained after `since` when given, interpolated inside the buckets as Prometheus's
    `histogram_quantile` does (prometheus_client parses, but has no quantile of a
    histogram); NaN while it is empty."""
    if since:
        before = dict(since)
        buckets = [(edge, count - before.get(edge, 0.0)) for edge, count in buckets]
    total = buckets[-1][1] if buckets else 0.0
    out = []
    for q in qs:
        below_edge, below = 0.0, 0.0
        value = math.nan
        for edge, count in buckets:
            if total and count >= q * total:
                if math.isinf(edge):
                    value = below_edge
                else:
                    value = below_edge + (edge - below_edge) * (q * total - below) / (count - below)
                break
            below_edge, below = edge, count
        out.append(value)
    return out


def summed_buckets(workers: Sequence[Worker], topic: str) -> list[tuple[float, float]]:
    """The workers' latency histograms of `topic` added up (they share the edges)."""
    totals: dict[float, float] = {}
    for worker in workers:
        for edge, count in worker.latency_buckets(topic):
            totals[edge] = totals.get(edge, 0.0) + count
    return sorted(totals.items())


@dataclass(frozen=True)
class Batches:
    count: int
    events: int
    seconds: float
    """Time in `Worker.handle` (validate, Redis, score, produce), summed over batches."""

    @classmethod
    def total(cls, parts: list[Batches]) -> Batches:
        return cls(
            sum(b.count for b in parts), sum(b.events for b in parts), sum(b.seconds for b in parts)
        )

    def as_dict(self) -> dict[str, float]:
        return {
            "batches": self.count,
            "mean_batch_events": self.events / self.count if self.count else 0.0,
            "mean_batch_ms": 1000 * self.seconds / self.count if self.count else 0.0,
        }


@dataclass
class Worker:
    proc: subprocess.Popen[bytes]
    port: int
    log: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def metrics(self) -> str:
        return httpx.get(f"{self.url}/metrics", timeout=5).text

    def consumed(self, topic: str) -> float:
        """Records taken by the worker's agent so far (counted as each batch starts)."""
        return self.sample("vigil_events_in_total", topic)

    def sample(self, name: str, topic: str, text: str | None = None) -> float:
        """One labelled sample of /metrics (0 when absent)."""
        pattern = rf'^{name}{{topic="{re.escape(topic)}"}} (\S+)$'
        match = re.search(pattern, text or self.metrics(), re.M)
        return float(match.group(1)) if match else 0.0

    def batches(self, topic: str) -> Batches:
        """What the worker's batches of `topic` looked like so far."""
        text = self.metrics()
        count = self.sample("vigil_batch_size_count", topic, text)
        events = self.sample("vigil_batch_size_sum", topic, text)
        seconds = self.sample("vigil_batch_processing_seconds_sum", topic, text)
        return Batches(int(count), int(events), seconds)

    def latency_buckets(self, topic: str) -> list[tuple[float, float]]:
        """`vigil_event_latency_seconds` of `topic` so far: (upper edge, cumulative count)."""
        return [
            (float(sample.labels["le"]), sample.value)
            for family in text_string_to_metric_families(self.metrics())
            if family.name == "vigil_event_latency_seconds"
            for sample in family.samples
            if sample.name.endswith("_bucket") and sample.labels["topic"] == topic
        ]

    def batches_done(self, topic: str) -> bool:
        """Whether every batch the worker has taken is processed and published."""
        text = self.metrics()
        taken = self.sample("vigil_batch_size_count", topic, text)
        return taken == self.sample("vigil_batch_processing_seconds_count", topic, text)

    def vitals_model(self) -> str | None:
        """The version that scored this worker's batches (the score's model_versions.vitals)."""
        match = re.search(r'^vigil_model_seconds_count{model="([^"]+)"}', self.metrics(), re.M)
        return match.group(1) if match else None

    def rss_bytes(self) -> int:
        """Resident set size now (the worker is one process)."""
        return self._status_bytes("VmRSS")

    def peak_rss_bytes(self) -> int:
        """The largest resident set size so far."""
        return self._status_bytes("VmHWM")

    def _status_bytes(self, name: str) -> int:
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith(f"{name}:"):
                return int(line.split()[1]) * 1024
        raise RuntimeError(f"no {name} in /proc/{self.proc.pid}/status")

    def check_alive(self) -> None:
        if self.proc.poll() is not None:
            raise RuntimeError(f"worker exited: {self.log.read_text()[-2000:]}")

    def wait_healthy(self, timeout_s: float = 120) -> None:
        launcher.wait_worker_healthy(self.proc, self.port, self.log, timeout_s)

    def stop(self) -> None:
        launcher.stop_worker(self.proc)


def spawn(settings: Settings, log: Path, port: int) -> Worker:
    env = {
        "VIGIL_KAFKA_BOOTSTRAP": settings.kafka_bootstrap,
        "VIGIL_REDIS_URL": settings.redis_url,
        "VIGIL_TOPIC_PREFIX": settings.topic_prefix,
        "VIGIL_WEB_PORT": str(port),
        "VIGIL_WEB_HOST": "127.0.0.1",
        "VIGIL_KAFKA_SESSION_TIMEOUT_S": str(settings.kafka_session_timeout_s),
    }
    return Worker(launcher.spawn_worker(env, log, "--loglevel", "warning"), port, log)


def produce_while_frozen(
    procs: Sequence[subprocess.Popen], bootstrap: str, topic: str, records: list[Record]
) -> None:
    """Produce `records` to `topic` while its consumers `procs` (their group balanced) are
    frozen (SIGSTOP), then let them go (SIGCONT): none reads a record before the caller's
    clock starts, so the drain that follows is timed over all of them."""
    for proc in procs:
        proc.send_signal(signal.SIGSTOP)
    try:
        produce(bootstrap, topic, records)
    finally:
        for proc in procs:
            proc.send_signal(signal.SIGCONT)


def wait_group_stable(settings: Settings, members: int, timeout_s: float = 120) -> None:
    """Until the worker group is Stable with `members` members that all hold partitions
    of the vitals topic, so that a measurement starts after the (re)balancing."""
    admin = admin_client(settings)
    vitals = settings.topic(topics.VITALS)
    deadline = time.monotonic() + timeout_s
    try:
        while time.monotonic() < deadline:
            group = admin.describe_groups([settings.app_id])[settings.app_id]
            holding = [m for m in group.get("members", []) if _holds(m, vitals)]
            if group.get("group_state") == "Stable" and len(holding) == members:
                return
            time.sleep(0.5)
    finally:
        admin.close()
    raise TimeoutError(f"group {settings.app_id} not stable with {members} members")


def _holds(member: dict, topic: str) -> bool:
    assignment = member.get("member_assignment") or {}
    return any(
        t.get("topic") == topic and t.get("partitions")
        for t in assignment.get("assigned_partitions", [])
    )


@contextmanager
def running(settings: Settings, count: int, log: Path) -> Iterator[list[Worker]]:
    """`count` workers in one consumer group, healthy and balanced; stopped on the way out."""
    workers = [spawn(settings, log, port) for port in launcher.free_ports(count)]
    try:
        for worker in workers:
            worker.wait_healthy()
        wait_group_stable(settings, count)
        yield workers
    finally:
        for worker in workers:
            worker.stop()


def wait_consumed(
    workers: list[Worker], topic: str, total: int, timeout_s: float
) -> tuple[float, float]:
    """Poll until the workers together have taken `total` records of `topic`; returns
    (perf_counter time, count) of that moment."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        for worker in workers:
            worker.check_alive()
        count = sum(w.consumed(topic) for w in workers)
        if count >= total:
            return time.perf_counter(), count
        time.sleep(POLL_S)
    raise TimeoutError(f"{topic}: fewer than {total} records consumed in {timeout_s:.0f}s")


def wait_batches_done(workers: list[Worker], topic: str, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while not all(w.batches_done(topic) for w in workers):
        if time.monotonic() > deadline:
            raise TimeoutError(f"{topic}: batches still in flight after {timeout_s:.0f}s")
        time.sleep(POLL_S)
