"""Where a worker's time goes: py-spy attached to one `vigil worker` on the vitals path.

    python -m bench.profile                     # a 60,000-event backlog drain
    python -m bench.profile --rate 800          # paced, as live traffic (1 event per score)

Starts its own Kafka and Redis (or uses VIGIL_* services), runs the worker as an operator
would (inheriting VIGIL_MODEL_DIR, so a trained model is profiled with its SHAP), samples
every thread of it with py-spy (`pip install py-spy`) and prints the samples grouped by
stage of the path; the raw stacks stay in `--out` for a flame graph.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

from bench.feed import paced_send, produce, ward_events
from bench.services import services
from bench.workers import running, wait_batches_done, wait_consumed
from streams import topics

STAGES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("vitals model: inputs, TreeSHAP, contributors", ("vitals_scores",)),
    ("Redis: features (update_vitals.lua)", ("FeatureStore.apply_vitals",)),
    ("Redis: store scores (save_score.lua)", ("FeatureStore.save_scores",)),
    ("fusion", ("fused_scores",)),
    ("RiskScore and NEWS2", ("score_patient", "news2")),
    ("alert policy", ("decide", "AlertState")),
    ("encode scores", ("encode",)),
    ("rest of scoring", ("PatientScorer.score",)),
    ("validate input", ("VitalsPipeline.prepare",)),
    ("publish, wait for acks", ("Worker._publish",)),
    ("metrics", ("Worker._observe",)),
    ("rest of the batch handler", ("Worker.handle",)),
    (
        "Faust and aiokafka: fetch, stream, commit",
        ("Fetcher", "Consumer", "Conductor", "Stream", "Service", "Agent", "MethodQueue"),
    ),
    ("waiting in epoll (Redis, Kafka)", ("EpollSelector.select",)),
)
"""A sample belongs to the first stage with a frame on its stack whose function name
starts with one of the stage's prefixes (so a stage's callees count with it)."""


def stage_shares(raw: Path) -> list[tuple[str, float]]:
    """Share of samples per stage in a py-spy `--format raw` file (collapsed stacks)."""
    counts: Counter[str] = Counter()
    for line in raw.read_text().splitlines():
        stack, _, n = line.rpartition(" ")
        functions = [re.sub(r" \(.*", "", frame) for frame in stack.split(";")]
        stage = next(
            (name for name, prefixes in STAGES if any(f.startswith(prefixes) for f in functions)),
            "event loop and other",
        )
        counts[stage] += int(n)
    total = sum(counts.values()) or 1
    return [(stage, n / total) for stage, n in counts.most_common()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=60_000, help="backlog size")
    parser.add_argument("--rate", type=float, help="paced events/s for 20 s instead")
    parser.add_argument("--patients", type=int, default=200)
    parser.add_argument("--out", type=Path, default=Path("profile.txt"), help="raw stacks")
    args = parser.parse_args()
    spy = shutil.which("py-spy", path=f"{Path(sys.executable).parent}:{os.environ['PATH']}")
    if spy is None:
        parser.error("py-spy is not installed (pip install py-spy)")
    seconds = 20
    events = int(args.rate * seconds) if args.rate else args.events
    records = ward_events(args.patients, events)
    log = Path(tempfile.mkdtemp(prefix="vigil-profile-")) / "worker.log"
    with services() as svc:
        settings = svc.fresh("profile")
        topic = settings.topic(topics.VITALS)
        with running(settings, 1, log) as (worker,):
            sampler = subprocess.Popen(
                [spy, "record", "-p", str(worker.proc.pid), "-r", "200", "--nonblocking",
                 "-f", "raw", "-o", str(args.out), "-d", str(seconds if args.rate else 600)],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            )  # fmt: skip
            started = time.perf_counter()
            if args.rate:
                asyncio.run(paced_send(svc.bootstrap, topic, records, args.rate))
            else:
                produce(svc.bootstrap, topic, records)
            done, _ = wait_consumed([worker], topic, len(records), timeout_s=900)
            wait_batches_done([worker], topic, timeout_s=60)
            if args.rate:
                sampler.wait()
            else:
                sampler.send_signal(2)  # py-spy writes its file on SIGINT
                sampler.wait()
            batches = worker.batches(topic).as_dict()
    print(
        f"{len(records):,} events in {done - started:.1f} s ({len(records) / (done - started):,.0f}"
        f"/s), {batches['batches']:.0f} batches of {batches['mean_batch_events']:.0f} events "
        f"in {batches['mean_batch_ms']:.0f} ms; worker log {log}\n"
    )
    print("| stage | share of samples |\n| --- | --- |")
    for stage, share in stage_shares(args.out):
        print(f"| {stage} | {100 * share:.0f} % |")


if __name__ == "__main__":
    main()
