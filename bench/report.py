"""What a benchmark run records about its machine, and its results as markdown tables."""

from __future__ import annotations

import math
import os
import platform
from importlib import metadata
from pathlib import Path
from typing import Any

from bench import replay

PACKAGES = ("faust-streaming", "aiokafka", "kafka-python", "redis", "hiredis", "xgboost")


def machine() -> dict[str, Any]:
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    mem_kb = int(Path("/proc/meminfo").read_text().split()[1])
    return {
        "cpus": os.cpu_count(),
        "cpu": cpu,
        "memory_gib": round(mem_kb / 2**20, 1),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
    }


def versions() -> dict[str, str]:
    return {name: metadata.version(name) for name in PACKAGES}


def _n(x: float | None) -> str:
    return "–" if x is None else f"{x:,.0f}"


def _ms(x: float) -> str:
    return f"{x:,.0f}" if x >= 10 else f"{x:.1f}"


def _mib(x: float) -> str:
    return f"{x / 2**20:,.1f} MiB"


def _kib(x: float) -> str:
    return f"{x / 1024:,.1f} KiB"


def _batch_note(b: dict[str, float]) -> str:
    return f"mean batch {b['mean_batch_events']:.0f} events in {b['mean_batch_ms']:.0f} ms"


def _cpu_note(run: dict[str, float]) -> str:
    return (
        f"CPU: redis-server {run['server_cpu_s'] / run['seconds']:.0%}, "
        f"client {run['client_cpu_s'] / run['seconds']:.0%} of the wall time"
    )


def throughput_table(result: dict[str, Any]) -> list[str]:
    c, t = result.get("ceilings", {}), result.get("throughput", {})
    rows = [
        (label, c.get(key), note)
        for label, key, note in (
            ("raw aiokafka pass-through", "passthrough_events_per_s", "consume + produce, acks"),
            ("bare Faust agent", "bare_faust_events_per_s", "parse only, take_events"),
            (
                "Faust agent with a worker's I/O",
                "faust_io_events_per_s",
                "Vigil's intake, 2 Redis round trips and a produce per batch, no computation",
            ),
            ("Redis, plain HSET + ZADD", "redis_plain_events_per_s", "pipelined, no features"),
            ("Redis, `update_vitals.lua`", "redis_lua_events_per_s", "FeatureStore.apply_vitals"),
        )
    ]
    for i, key in ((3, "redis_plain"), (4, "redis_lua")):
        if key in c:
            label, rate, note = rows[i]
            per_call = c["redis_batch_events"] / c["redis_mean_patients_per_batch"]
            note += f", {per_call:.1f} events per patient per batch; {_cpu_note(c[key])}"
            rows[i] = (label, rate, note)
    pairs = t.get("pairs", [])
    for w in t.get("runs", []):
        note = f"{w['events'] / max(w['scores'], 1):.1f} events per score, "
        note += _batch_note(w["batches"])
        if pair := w.get("pair"):
            bare = pairs[pair - 1]["bare_faust_events_per_s"]
            rows.append((f"pair {pair}: bare Faust agent", bare, "right before the worker below"))
            note = f"**{pairs[pair - 1]['ratio']:.3f}** of that bare Faust; {note}"
            rows.append((f"pair {pair}: Vigil, 1 worker", w["events_per_s"], note))
        else:
            n = w["workers"]
            if "bare_faust_events_per_s" in w:
                label = f"{n} bare Faust agents in one group"
                rows.append((label, w["bare_faust_events_per_s"], "right before the workers below"))
                note = f"**{w['ratio']:.3f}** of those agents; {note}"
            rows.append((f"Vigil, {n} workers", w["events_per_s"], note))
    lines = ["| path | events/s | note |", "| --- | --- | --- |"]
    lines += [f"| {name} | {_n(rate)} | {note} |" for name, rate, note in rows if rate is not None]
    for key, label in (
        ("ratio_1_worker_to_bare_faust", f"Vigil 1 worker / bare Faust, median of {len(pairs)}"),
        ("ratio_2_workers_to_2_bare_faust", "Vigil 2 workers / 2 bare Faust agents"),
        ("ratio_2_workers_to_bare_faust", "Vigil 2 workers / 1 bare Faust agent (pairs' median)"),
        ("ratio_1_worker_to_faust_io", "Vigil 1 worker / Faust with a worker's I/O"),
        ("ratio_2_workers_to_1", "Vigil 2 workers / 1 worker"),
    ):
        if key in t:
            lines.append(f"| {label} | {t[key]:.3f} | |")
    return lines


def _unscored(level: dict[str, Any]) -> str:
    n = level["unscored_events"]
    return f" ({n:,} never scored)" if n else ""


def latency_table(result: dict[str, Any]) -> list[str]:
    """Each level's median over its runs, then every run."""
    lat = result.get("latency", {})
    if not lat.get("levels"):
        return []
    lines = [
        "| load | events/s | workers | runs | p50 ms | p95 ms | p99 ms | p99 ms of each run |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for m in lat.get("medians", []):
        lines.append(
            f"| {m['share']:.0%} | {_n(m['rate'])} | {m.get('workers', 1)} | {m['runs']} "
            f"| {_ms(m['p50_ms'])} "
            f"| {_ms(m['p95_ms'])} | **{_ms(m['p99_ms'])}** "
            f"| {', '.join(_ms(p) for p in m['p99_ms_of_each_run'])} |"
        )
    lines += [
        "",
        "| load | run | events/s | events | p50 ms | p95 ms | p99 ms | max ms "
        "| p50 first → last quarter | from broker append, p50 / p99 ms "
        "| warm-up p50 / p99 ms | worker batches |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for lv in sorted(lat.get("levels", []), key=lambda lv: (lv["share"], lv.get("run", 1))):
        in_worker = (lv.get("worker_p50_ms", math.nan), lv.get("worker_p99_ms", math.nan))
        warmup = (lv.get("warmup_p50_ms", math.nan), lv.get("warmup_p99_ms", math.nan))
        lines.append(
            f"| {lv['share']:.0%} | {lv.get('run', 1)} | {_n(lv['rate'])} "
            f"| {_n(lv['sent'])}{_unscored(lv)} "
            f"| {_ms(lv['p50_ms'])} "
            f"| {_ms(lv['p95_ms'])} | {_ms(lv['p99_ms'])} | {_ms(lv['max_ms'])} "
            f"| {_ms(lv['p50_first_quarter_ms'])} → {_ms(lv['p50_last_quarter_ms'])} "
            f"| {_ms(in_worker[0])} / {_ms(in_worker[1])} "
            f"| {_ms(warmup[0])} / {_ms(warmup[1])} "
            f"| {lv['sent'] / max(lv['scores'], 1):.1f} events per score, "
            f"{_batch_note(lv['batches'])} |"
        )
    return lines


def memory_table(result: dict[str, Any]) -> list[str]:
    mem = result.get("memory", {})
    lines = ["| measure | value |", "| --- | --- |"]
    r = mem.get("redis")
    if r:
        lines += [
            f"| Redis per patient, features ({r['samples_per_patient']:.0f} samples), "
            f"{r['patients']} patients after a day "
            f"| {_kib(r['feature_bytes_per_patient'])} |",
            f"| Redis per patient, scores ({r['history_per_patient']:.0f} in 24 h history) "
            f"| {_kib(r['score_bytes_per_patient'])} |",
            f"| Redis per patient, total (used_memory delta / patients) "
            f"| {_kib(r['bytes_per_patient'])} |",
        ]
        lines += [
            f"| `MEMORY USAGE` of key `{kind}`, mean | {_kib(b)} |"
            for kind, b in r["key_bytes"].items()
        ]
    for row in mem.get("worker_rss", []):
        lines.append(
            f"| worker RSS, {row['patients']:,} patients ({row['events']:,} events) "
            f"| {_mib(row['rss_bytes'])} (peak {_mib(row['peak_rss_bytes'])}) |"
        )
    return lines


def window_table(result: dict[str, Any]) -> list[str]:
    r = result.get("memory", {}).get("redis")
    if not r:
        return []
    lines = [
        "| window per patient | events/s | redis-server CPU share |",
        "| --- | --- | --- |",
    ]
    for key in ("lua_after_1h", "lua_after_24h"):
        run = r[key]
        lines.append(
            f"| {run['window_samples']:,.0f} samples | {_n(run['events'] / run['seconds'])} "
            f"| {run['server_cpu_s'] / run['seconds']:.0%} |"
        )
    return lines


def replay_table(result: dict[str, Any]) -> list[str]:
    lines = [
        "| ward replayed | events | seconds | events/s | 1,000 beds x 24 h |",
        "| --- | --- | --- | --- | --- |",
    ]
    for r in result.get("replay", {}).get("runs", []):
        whole = r["beds"] * r["hours"] >= replay.TARGET_BEDS * replay.TARGET_HOURS
        how = "measured" if whole else "linear extrapolation"
        lines.append(
            f"| {r['beds']:,} beds x {r['hours']:g} h | {_n(r['events'])} | {r['seconds']:.1f} | "
            f"{_n(r['events_per_s'])} | {r['extrapolated_seconds'] / 60:.1f} min ({how}) |"
        )
    return lines


def _threads(run: dict[str, Any]) -> str:
    return f"{run['threads']} thread{'' if run['threads'] == 1 else 's'}"


def models_table(result: dict[str, Any]) -> list[str]:
    """Each model's rate by batch size, as the worker calls it."""
    models = result.get("models", {})
    lines = ["| model | batch | per second | beside it |", "| --- | --- | --- | --- |"]
    vitals = models.get("vitals", {})
    if "skipped" in vitals:
        lines.append(f"| vitals | – | – | {vitals['skipped']} |")
    for r in vitals.get("results", []):
        lines.append(
            f"| vitals `{vitals['model']}` (SHAP by {vitals['shap']}, top 5) | {r['batch']} "
            f"| {_n(r['rows_per_s'])} rows | XGBoost `pred_contribs` "
            f"{_n(r['xgboost_pred_contribs_rows_per_s'])}, margin only "
            f"{_n(r['margin_only_rows_per_s'])} |"
        )
    notes = models.get("notes", {})
    for r in notes.get("results", []):
        lines.append(
            f"| notes (encoder and explanations, {notes['device']}, {_threads(notes)}) "
            f"| {r['batch']} | {r['notes_per_s']:,.1f} notes | |"
        )
    images = models.get("imaging", {})
    for r in images.get("results", []):
        lines.append(
            f"| images ({images['device']}, {_threads(images)}) | {r['batch']} "
            f"| {_n(r['images_per_s'])} images | largest difference from the CPU "
            f"{images['max_difference_from_cpu']:.1e} |"
        )
    return lines


def markdown(result: dict[str, Any]) -> str:
    m = result["machine"]
    head = [
        f"Vigil benchmark, {result['at']}: {m['cpus']} CPUs ({m['cpu']}), Python {m['python']}, "
        f"Kafka {result['services']['kafka']}, Redis {result['services']['redis']}, "
        f"vitals model: {result.get('vitals_model', {}).get('version') or '–'}",
    ]
    sections = [
        ("Throughput (sustained, preloaded backlog)", throughput_table),
        ("End-to-end latency (send → score on risk-scores.v1)", latency_table),
        ("Memory", memory_table),
        ("`update_vitals.lua`, one event per patient per call (as live traffic)", window_table),
        ("Replay (`vigil rebuild-features`)", replay_table),
        ("Models, by batch size (as the worker calls them)", models_table),
    ]
    out = head
    for title, table in sections:
        lines = table(result)
        if len(lines) > 2:
            out += ["", f"### {title}", "", *lines]
    return "\n".join(out)
