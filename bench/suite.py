"""Vigil's vitals path against its ceilings, in one run on real Kafka and Redis.

    python -m bench [--quick] [--out bench-results.json] [--stages ceilings,throughput,...]

Uses VIGIL_KAFKA_BOOTSTRAP and VIGIL_REDIS_URL when both are set, else starts a local
Kafka and redis-server for the run. Workers inherit the environment, so VIGIL_MODEL_DIR
picks the vitals model (without one they score with the NEWS2 fallback). Stages:

- ceilings: raw aiokafka pass-through, bare Faust, Faust with a worker's I/O, plain Redis
  writes, Vigil's Lua alone;
- throughput: sustained events/s of 1 and 2 workers in one group; the 1-worker rate in
  pairs, each right after a bare Faust run on the same records, its ratio the pairs'
  median; 2 workers right after 2 bare agents in one group; ratios to Faust with a
  worker's I/O;
- latency: send → score p50/p95/p99 at 25, 50 and 90 % of the 1-worker sustained rate,
  after 5 s at that rate (the warm-up, reported apart); three runs of each level, taken
  in turn, the median of the runs as each level's headline;
- memory: Redis bytes per patient after a day of 1/min vitals; worker RSS by ward size;
- replay: `vigil rebuild-features` on scaled-down wards, extrapolated to 1,000 beds x 24 h;
- models: by batch size, the vitals model's rows/s as the worker calls it (prediction,
  TreeSHAP, top 5; needs a model in VIGIL_MODEL_DIR), notes/s and images/s as the worker
  calls those models (on CUDA when present, else the CPU), in this process after the
  stages above (`bench.model_throughput`, `bench.notes_throughput`,
  `bench.image_throughput`, which also run alone).

Writes every number as JSON to --out and prints markdown tables.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shlex
import statistics
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench import (
    ceilings,
    image_throughput,
    latency,
    memory,
    model_throughput,
    notes_throughput,
    replay,
    report,
    throughput,
)
from bench.feed import Record, produce, ward_events
from bench.services import Services, services
from models import news2_fallback
from streams import topics
from streams.settings import Settings

STAGES = ("ceilings", "throughput", "latency", "memory", "replay", "models")


@dataclass(frozen=True)
class Plan:
    """How big each stage is: the defaults are the full run (about 15 min on 2 cores)."""

    events: int = 100_000
    """Enough for a drain of about 10 s by one worker after the producer's flush: with
    30,000 that window was 3-5 s, and one worker's rate spread by half between runs."""
    patients: int = 200
    workers: tuple[int, ...] = (1, 2)
    pairs: int = 3
    """Bare Faust then one worker, back to back, this many times: on these shared 2 cores
    one worker's ratio to a bare Faust run minutes apart came out 0.64 to 0.84 on one day
    (BENCHMARKS.md), so the ratio is each pair's and the headline their median."""
    latency_shares: tuple[float, ...] = (0.25, 0.5, 0.9)
    latency_runs: int = 3
    """Each level this many times, each with a fresh worker, the levels taken in turn: the
    p99 at 50 % moved from 465 to 289 ms between two full runs of the same code 26 minutes
    apart (BENCHMARKS.md), so a level's headline is the median of its runs."""
    latency_workers: int = 1
    """Workers in one group for the latency stage; the levels stay shares of the one-worker
    rate, so `--latency-workers 2` asks what a second worker on the same machine buys at
    the same load."""
    latency_seconds: float = 25.0
    latency_warmup_s: float = 5.0
    """Fed at each level's rate before its measured seconds (bench/latency.py)."""
    memory_patients: int = 200
    rss_wards: tuple[int, ...] = (1_000, 10_000)
    rss_events_per_patient: int = 2
    replays: tuple[tuple[int, float], ...] = ((1_000, 24.0),)
    model_seconds: float = 2.0
    """Per batch size and model: how long its calls are repeated."""
    notes_seconds: float = 5.0
    """Per batch size, notes being slow (about 50 a second on these 2 cores)."""


QUICK = Plan(
    events=4_000,
    patients=100,
    pairs=1,
    latency_runs=1,
    latency_seconds=6.0,
    latency_warmup_s=2.0,
    memory_patients=20,
    rss_wards=(100, 1_000),
    replays=((10, 24.0), (100, 1.0)),
    model_seconds=0.2,
    notes_seconds=0.5,
)


def _say(message: str) -> None:
    print(f"# {time.strftime('%H:%M:%S')} {message}", file=sys.stderr, flush=True)


def run_ceilings(svc: Services, records: list[Record], log: Path) -> dict[str, Any]:
    settings = svc.fresh("ceil")
    # this prefix's output topics are sinks: no worker runs on them
    source, sink = settings.topic(topics.VITALS), settings.topic(topics.SCORES)
    produce(svc.bootstrap, source, records)
    n = len(records)
    passthrough_s = asyncio.run(ceilings.passthrough(svc.bootstrap, source, sink, n))
    _say(f"pass-through: {n / passthrough_s:,.0f} events/s")
    faust_s = ceilings.bare_faust(svc.bootstrap, source, n, log)
    _say(f"bare Faust: {n / faust_s:,.0f} events/s")
    faust_io_s = ceilings.bare_faust(svc.bootstrap, source, n, log, io=settings)
    _say(f"Faust with a worker's I/O: {n / faust_io_s:,.0f} events/s")
    batches = ceilings.store_batches(records, settings.batch_max)
    ns = settings.redis_namespace
    plain = asyncio.run(ceilings.redis_plain(svc.redis_url, f"{ns}plain:", batches))
    lua = asyncio.run(ceilings.redis_lua(svc.redis_url, f"{ns}lua:", batches))
    _say(f"Redis: plain {n / plain.seconds:,.0f}, Lua {n / lua.seconds:,.0f} events/s")
    return {
        "events": n,
        "passthrough_events_per_s": n / passthrough_s,
        "bare_faust_events_per_s": n / faust_s,
        "faust_io_events_per_s": n / faust_io_s,
        "redis_plain_events_per_s": n / plain.seconds,
        "redis_lua_events_per_s": n / lua.seconds,
        "redis_plain": asdict(plain),
        "redis_lua": asdict(lua),
        "redis_batch_events": settings.batch_max,
        "redis_mean_patients_per_batch": sum(map(len, batches)) / len(batches),
    }


def run_throughput(svc: Services, records: list[Record], plan: Plan, log: Path) -> dict[str, Any]:
    source = svc.fresh("pair").topic(topics.VITALS)
    produce(svc.bootstrap, source, records)  # each bare Faust run reads it as a new group
    pairs, runs = [], []
    for pair in range(1, plan.pairs + 1):
        bare = len(records) / ceilings.bare_faust(svc.bootstrap, source, len(records), log)
        one = throughput.sustained(svc, records, 1, log)
        ratio = one.events_per_s / bare
        _say(f"pair {pair}: bare Faust {bare:,.0f}, 1 worker {one.events_per_s:,.0f} events/s "
             f"({one.vitals_model}): {ratio:.3f}")  # fmt: skip
        pairs.append(
            {
                "bare_faust_events_per_s": bare,
                "vigil_events_per_s": one.events_per_s,
                "ratio": ratio,
            }
        )
        runs.append({**asdict(one), "events_per_s": one.events_per_s, "pair": pair})
    for count in (w for w in plan.workers if w != 1):
        # as many bare agents in one group, timed the same way, right before
        bare = len(records) / ceilings.bare_faust_group(svc, records, count, log)
        result = throughput.sustained(svc, records, count, log)
        ratio = result.events_per_s / bare
        _say(f"{count} bare Faust agents {bare:,.0f}, {count} workers "
             f"{result.events_per_s:,.0f} events/s ({result.vitals_model}): "
             f"{ratio:.3f}")  # fmt: skip
        runs.append(
            {
                **asdict(result),
                "events_per_s": result.events_per_s,
                "bare_faust_events_per_s": bare,
                "ratio": ratio,
            }
        )
    return {
        "pairs": pairs,
        "runs": runs,
        "bare_faust_events_per_s": statistics.median(p["bare_faust_events_per_s"] for p in pairs),
        "one_worker_events_per_s": statistics.median(p["vigil_events_per_s"] for p in pairs),
        "ratio_1_worker_to_bare_faust": statistics.median(p["ratio"] for p in pairs),
    }


def run_latency(svc: Services, plan: Plan, max_rate: float, log: Path) -> dict[str, Any]:
    runs = []
    for run in range(1, plan.latency_runs + 1):
        for share in plan.latency_shares:
            rate = share * max_rate
            seconds = plan.latency_warmup_s + plan.latency_seconds
            records = ward_events(plan.patients, round(rate * seconds), seed=2)
            level = latency.measure(
                svc, records, share, rate, log, plan.latency_warmup_s, plan.latency_workers
            )
            _say(f"latency at {share:.0%} ({rate:,.0f}/s), run {run}: p50 {level.p50_ms:.0f} "
                 f"ms, p99 {level.p99_ms:.0f} ms (warm-up p99 {level.warmup_p99_ms:.0f} ms), "
                 f"{level.unscored_events} unscored")  # fmt: skip
            runs.append({"run": run, **asdict(level)})
    return {
        "max_rate_events_per_s": max_rate,
        "workers": plan.latency_workers,
        "levels": runs,
        "medians": latency_medians(runs),
    }


def latency_medians(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per load level: the median of its runs' percentiles, and each run's p99."""
    medians = []
    for share in sorted({r["share"] for r in runs}):
        mine = [r for r in runs if r["share"] == share]
        medians.append(
            {
                "share": share,
                "rate": mine[0]["rate"],
                "workers": mine[0]["workers"],
                "runs": len(mine),
                **{
                    key: statistics.median(r[key] for r in mine)
                    for key in ("p50_ms", "p95_ms", "p99_ms")
                },
                "p99_ms_of_each_run": [r["p99_ms"] for r in mine],
            }
        )
    return medians


def run_memory(svc: Services, plan: Plan, log: Path) -> dict[str, Any]:
    redis_day = memory.redis_per_patient(svc, plan.memory_patients)
    _say(f"Redis: {redis_day.bytes_per_patient / 1024:,.0f} KiB per patient")
    template = ward_events(200, 200 * 5, seed=4)  # courses the distinct patients borrow
    rss = memory.worker_rss(svc, template, list(plan.rss_wards), plan.rss_events_per_patient, log)
    _say(f"worker RSS: {', '.join(f'{r.patients}: {r.rss_bytes / 2**20:,.0f} MiB' for r in rss)}")
    return {
        "redis": {**asdict(redis_day), "bytes_per_patient": redis_day.bytes_per_patient},
        "worker_rss": [asdict(r) for r in rss],
    }


def run_replay(svc: Services, plan: Plan) -> dict[str, Any]:
    runs = []
    for beds, hours in plan.replays:
        r = replay.rebuild(svc, beds, hours)
        _say(f"replay {beds} beds x {hours:g} h: {r.events_per_s:,.0f} events/s")
        runs.append(
            {
                **asdict(r),
                "events_per_s": r.events_per_s,
                "extrapolated_seconds": r.extrapolated_seconds,
            }
        )
    return {
        "target": f"{replay.TARGET_BEDS} beds x {replay.TARGET_HOURS:g} h",
        "extrapolated": "measured where the ward is the target; smaller wards scaled linearly "
        "by bed-hours, which is optimistic (bench/replay.py)",
        "runs": runs,
    }


def run_models(plan: Plan) -> dict[str, Any]:
    settings = Settings()
    vitals_model = model_throughput.load(settings.model_dir)
    if vitals_model is None:
        vitals = {"skipped": f"no valid vitals model in {settings.model_dir}"}
    else:
        vitals = model_throughput.measure(vitals_model, plan.model_seconds)
    best = max((r["rows_per_s"] for r in vitals.get("results", [])), default=None)
    _say(f"vitals model: {'skipped' if best is None else f'up to {best:,.0f} rows/s'}")
    # one thread, as the worker runs its models (VIGIL_TORCH_THREADS defaults to 1)
    notes = notes_throughput.measure(plan.notes_seconds, settings.torch_threads)
    _say(f"notes model: up to {max(r['notes_per_s'] for r in notes['results']):,.1f} notes/s")
    images = image_throughput.measure(
        settings.model_device, settings.torch_threads, plan.model_seconds
    )
    best = max(r["images_per_s"] for r in images["results"])
    _say(f"image model: up to {best:,.0f} images/s on {images['device']}")
    return {"vitals": vitals, "notes": notes, "imaging": images}


def _ratios(result: dict[str, Any]) -> None:
    """The ratios beside the pairs' own: 2 workers to 2 bare agents run right before them,
    to the pairs' median bare Faust and to one worker; one worker to the ceilings' Faust
    with a worker's I/O."""
    t = result.get("throughput", {})
    if not t:
        return
    one, bare = t["one_worker_events_per_s"], t["bare_faust_events_per_s"]
    two = next((r for r in t["runs"] if r["workers"] == 2), None)
    if two is not None:
        t["ratio_2_workers_to_2_bare_faust"] = two["ratio"]
        t["ratio_2_workers_to_bare_faust"] = two["events_per_s"] / bare
        t["ratio_2_workers_to_1"] = two["events_per_s"] / one
    if io := result.get("ceilings", {}).get("faust_io_events_per_s"):
        t["ratio_1_worker_to_faust_io"] = one / io


def _vitals_model(result: dict[str, Any]) -> dict[str, Any]:
    seen = [lv["vitals_model"] for lv in result.get("latency", {}).get("levels", [])]
    seen += [r["vitals_model"] for r in result.get("throughput", {}).get("runs", [])]
    seen.append(result.get("models", {}).get("vitals", {}).get("model"))
    version = next((v for v in seen if v), None)
    return {
        "version": version,
        "loaded": version is not None and version != news2_fallback.VERSION,
        "model_dir": str(Settings().model_dir),
    }


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, for a smoke run")
    parser.add_argument(
        "--out", type=Path, default=Path("bench-results.json"), help="JSON results file"
    )
    parser.add_argument("--stages", default=",".join(STAGES), help=f"comma-separated of {STAGES}")
    parser.add_argument("--events", type=int, help=f"throughput events (default {Plan.events})")
    parser.add_argument("--patients", type=int, help="throughput/latency patients (default 200)")
    parser.add_argument(
        "--max-rate", type=float, help="1-worker events/s for latency when throughput is skipped"
    )
    parser.add_argument(
        "--latency-workers", type=int, default=1, help="workers for the latency stage (default 1)"
    )
    args = parser.parse_args(argv)
    args.stages = [s for s in args.stages.split(",") if s]
    if unknown := set(args.stages) - set(STAGES):
        parser.error(f"unknown stages {sorted(unknown)}")
    if "latency" in args.stages and "throughput" not in args.stages and not args.max_rate:
        parser.error("--stages latency without throughput needs --max-rate")
    return args


def run_stages(svc: Services, args: argparse.Namespace, plan: Plan, log: Path) -> dict[str, Any]:
    result: dict[str, Any] = {}
    needs_records = {"ceilings", "throughput"} & set(args.stages)
    records = ward_events(plan.patients, plan.events) if needs_records else []
    if "ceilings" in args.stages:
        result["ceilings"] = run_ceilings(svc, records, log)
    if "throughput" in args.stages:
        result["throughput"] = run_throughput(svc, records, plan, log)
    if "latency" in args.stages:
        max_rate = args.max_rate or result["throughput"]["one_worker_events_per_s"]
        result["latency"] = run_latency(svc, plan, max_rate, log)
    if "memory" in args.stages:
        result["memory"] = run_memory(svc, plan, log)
    if "replay" in args.stages:
        result["replay"] = run_replay(svc, plan)
    if "models" in args.stages:
        result["models"] = run_models(plan)
    return result


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    plan = QUICK if args.quick else Plan()
    plan = replace(
        plan,
        events=args.events or plan.events,
        patients=args.patients or plan.patients,
        latency_workers=args.latency_workers,
    )
    log = Path(tempfile.mkdtemp(prefix="vigil-bench-logs-")) / "workers.log"
    _say(f"worker logs: {log}")
    result: dict[str, Any] = {
        "command": shlex.join(["python", "-m", "bench", *(sys.argv[1:] if argv is None else argv)]),
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": report.machine(),
        "versions": report.versions(),
        "plan": asdict(plan),
    }
    started = time.monotonic()
    with services() as svc:
        kafka, redis = svc.kafka_version, svc.redis_version()
        result["services"] = {"kafka": kafka, "redis": redis, "local": svc.local}
        result |= run_stages(svc, args, plan, log)
    _ratios(result)
    result["vitals_model"] = _vitals_model(result)
    result["machine"]["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    result["seconds"] = round(time.monotonic() - started, 1)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(report.markdown(result))
    print(f"\nresults: {args.out.resolve()}")
