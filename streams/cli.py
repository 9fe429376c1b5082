"""`vigil` command line. Every command exits non-zero with a one-line reason when a
service it needs does not answer."""

from __future__ import annotations

import gc
import os
import subprocess
import sys
import time
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, NoReturn

import orjson
import typer
from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from streams import launcher, topics
from streams.settings import Settings

app = typer.Typer(help="Vigil: real-time clinical deterioration prediction.", no_args_is_help=True)
dev = typer.Typer(help="Local Apache Kafka (KRaft) and redis-server for development.")
scores = typer.Typer(help="Follow the risk-scores topic.")
app.add_typer(dev, name="dev")
alerts = typer.Typer(help="Follow the risk-alerts topic.")
app.add_typer(scores, name="scores")
app.add_typer(alerts, name="alerts")
cohort = typer.Typer(help="Labelled cohorts on disk: simulate, import, replay into Kafka.")
app.add_typer(cohort, name="cohort")
train = typer.Typer(help="Train a model into VIGIL_MODEL_DIR.")
app.add_typer(train, name="train")
console = Console()
err = Console(stderr=True)


def _fail(reason: str) -> NoReturn:
    print(f"vigil: {' '.join(reason.split())}", file=sys.stderr)
    raise typer.Exit(1)


def _require_services(settings: Settings, redis: bool = True) -> None:
    try:
        launcher.wait_for_kafka(settings.kafka_bootstrap, timeout_s=10)
        if redis:
            launcher.wait_for_redis(settings.redis_url, timeout_s=5)
    except launcher.ServiceError as exc:
        _fail(f"{exc} (run `vigil dev up` and its export lines, or set VIGIL_KAFKA_BOOTSTRAP)")


def _follow(settings: Settings, names: list[str], from_beginning: bool) -> Any:
    """A group-less consumer of these topics for a terminal view (commits nothing)."""
    _require_services(settings, redis=False)
    from kafka import KafkaConsumer

    from streams.kafka import client_options

    return KafkaConsumer(
        *(settings.topic(name) for name in names),
        auto_offset_reset="earliest" if from_beginning else "latest",
        enable_auto_commit=False,
        **client_options(settings),
    )


@dev.command("up")
def dev_up() -> None:
    """Start Kafka and Redis unless configured ones answer; print the export lines."""
    try:
        found = launcher.configured(timeout_s=3)
    except launcher.ServiceError:
        found = None
        err.print("# configured services do not answer; starting local ones", highlight=False)
    if found is not None:
        err.print("# configured Kafka and Redis answer; starting nothing", highlight=False)
        print(launcher.exports(*found))
        return
    try:
        t0 = time.monotonic()
        services, started = launcher.dev_up()
    except launcher.ServiceError as exc:
        _fail(str(exc))
    what = f"started in {time.monotonic() - t0:.1f}s" if started else "already running"
    err.print(f"# Kafka {launcher.KAFKA_VERSION} and Redis {what}", highlight=False)
    print(services.exports())


@dev.command("down")
def dev_down() -> None:
    """Stop what `dev up` started and delete its data."""
    stopped = launcher.dev_down()
    err.print("# stopped" if stopped else "# nothing was running")


@dev.command("status")
def dev_status() -> None:
    """Print the export lines of the running services; exit 1 when none run."""
    services = launcher.dev_status()
    if services is None:
        _fail("no local services running (vigil dev up)")
    print(services.exports())


@app.command()
def worker(loglevel: str = typer.Option("info", help="debug, info, warning")) -> None:
    """Run a stream worker; several may share the consumer group."""
    settings = Settings()
    _require_services(settings)
    try:
        created = topics.ensure_topics(settings)
    except Exception as exc:
        _fail(f"cannot create topics: {exc}")
    if created:
        err.print(f"# created topics: {', '.join(created)}", highlight=False)
    from streams.app import Worker
    from streams.kafka import faust_worker

    w = Worker(settings)
    settle_heap()
    faust_worker(w.app, loglevel).execute_from_commandline()


GC_YOUNG_THRESHOLD = 50_000
"""Container objects allocated (net of those freed) between two young-generation passes of
Python's cyclic collector; Python's default is 700."""


def settle_heap() -> None:
    """Set the cyclic collector up for a worker whose startup is done.

    What is loaded by then (torch, the models, Faust: some 300,000 objects) lives as long
    as the process. Frozen, the collector leaves it out of its full passes, which
    otherwise stopped the worker for 200-540 ms at a time mid-stream (measured with
    gc.callbacks at 800 events/s; it was the p99 latency).

    A batch's events, samples and scores live for a batch or two and are freed by their
    reference counts, but at Python's default threshold of 700 the collector ran a young
    pass every few milliseconds and kept promoting them, so it traversed each of them
    several times: 1.3 s of a 14 s backlog drain of 100,000 events (9 %), and 1.3 s of a
    30 s level of 4,700 live events/s, in 4,400 young, 400 middle and 36 full passes. At
    `GC_YOUNG_THRESHOLD` it ran no pass at all at that live rate and four or five in the
    drain (0.08-0.19 s); the garbage in cycles it still collects is bounded by the
    threshold (BENCHMARKS.md, "The cyclic collector set for a stream worker")."""
    gc.freeze()
    gc.set_threshold(GC_YOUNG_THRESHOLD)


@app.command("rebuild-features")
def rebuild_features() -> None:
    """Restore Redis feature state from vitals.v1 (e.g. after Redis lost its data)."""
    import asyncio

    from streams.rebuild import rebuild_features as rebuild

    settings = Settings()
    _require_services(settings)
    t0 = time.monotonic()
    try:
        report = asyncio.run(rebuild(settings))
    except RuntimeError as exc:
        _fail(str(exc))
    err.print(
        f"# rebuilt {report.patients} patients from {report.records} records "
        f"({report.invalid} invalid, skipped) in {time.monotonic() - t0:.1f}s",
        highlight=False,
    )


def _publish_vitals(records: Iterable[tuple[bytes, bytes]], rate: float) -> None:
    """(key, value) records to vitals.v1 at `rate` per second (0 = as fast as possible);
    Ctrl-C stops early, and what was sent is flushed either way."""
    settings = Settings()
    _require_services(settings, redis=False)
    from kafka import KafkaProducer

    from streams.kafka import client_options

    topics.ensure_topics(settings)
    producer = KafkaProducer(acks="all", linger_ms=5, **client_options(settings))
    topic = settings.topic(topics.VITALS)
    sent, t0 = 0, time.monotonic()
    try:
        for key, value in records:
            producer.send(topic, key=key, value=value)
            sent += 1
            ahead = sent / rate - (time.monotonic() - t0) if rate else 0
            if ahead > 0:
                time.sleep(ahead)
            if sent % 1000 == 0:
                err.print(f"# {sent} events sent", highlight=False)
    except KeyboardInterrupt:
        pass
    finally:
        producer.flush()
        producer.close()
    err.print(f"# done: {sent} events in {time.monotonic() - t0:.1f}s", highlight=False)


@app.command()
def simulate(
    patients: int = typer.Option(24, min=1, help="patients on the ward"),
    rate: float = typer.Option(50.0, min=0.1, help="events per second (real time)"),
    hours: float = typer.Option(24.0, min=0.01, help="simulated hours to play"),
    interval: float = typer.Option(60.0, min=1, help="simulated seconds between monitor sends"),
    deteriorating: float = typer.Option(0.25, min=0, max=1, help="share who deteriorate"),
    seed: int = typer.Option(7),
) -> None:
    """Publish a simulated ward's vitals to vitals.v1, ending at the current time."""
    from streams.simulator import ward_feed

    start = datetime.now(UTC) - timedelta(hours=hours)
    feed = ward_feed(patients, deteriorating, start, hours, interval, seed)
    _publish_vitals(((e["patient_id"].encode(), orjson.dumps(e)) for e in feed), rate)


@cohort.command("simulate")
def cohort_simulate(
    out: Path = typer.Argument(..., help="directory to write (vitals.jsonl, outcomes.jsonl)"),
    patients: int = typer.Option(400, min=1),
    days: float = typer.Option(3.0, min=0.1),
    seed: int = typer.Option(0),
    notes: bool = typer.Option(False, help="also write notes.jsonl (clinical notes)"),
    images: bool = typer.Option(False, help="also write chest images (DICOM, PNG)"),
) -> None:
    """Write a labelled simulated cohort, reproducible from the seed."""
    from models import cohort as cohort_sim

    started = time.monotonic()
    spec = cohort_sim.CohortSpec(patients=patients, days=days, seed=seed)
    info = cohort_sim.write(spec, out)
    err.print(
        f"# {info['patients']} patients, {info['vitals_events']} vitals events, "
        f"{info['deterioration_events']} deterioration events in {out} "
        f"({time.monotonic() - started:.1f}s)",
        highlight=False,
    )
    if notes:
        from models.notes_corpus import write_notes

        err.print(f"# notes: {write_notes(spec, out)}", highlight=False)
    if images:
        from models.imaging_data import write_images

        err.print(f"# images: {write_images(spec, out)}", highlight=False)


@cohort.command("physionet")
def cohort_physionet(
    folder: Path = typer.Argument(..., exists=True, file_okay=False, help="folder of .psv files"),
    out: Path = typer.Argument(..., help="directory to write"),
) -> None:
    """Convert PhysioNet/CinC 2019 sepsis challenge files into a Vigil cohort."""
    from models import physionet

    try:
        info = physionet.convert(folder, out)
    except ValueError as exc:
        _fail(str(exc))
    err.print(
        f"# {info['patients']} patients, {info['vitals_events']} vitals events, "
        f"{info['deterioration_events']} sepsis onsets in {out}",
        highlight=False,
    )


@cohort.command("replay")
def cohort_replay(
    directory: Path = typer.Argument(..., exists=True, file_okay=False),
    rate: float = typer.Option(0.0, min=0, help="events per second (0 = as fast as possible)"),
) -> None:
    """Publish a cohort's vitals log to vitals.v1, keyed by patient, in log order."""
    from models.eventlog import iter_vitals_lines

    lines = iter_vitals_lines(directory)
    _publish_vitals(((orjson.loads(line)["patient_id"].encode(), line) for line in lines), rate)


def _training_cohort(
    given: Path | None, seed: int, patients: int, days: float, multimodal: bool = False
) -> Path:
    """The cohort to use: the one given, or a simulated one cached by its parameters
    (`multimodal`: with notes and chest films)."""
    if given is not None:
        return given
    from models import cohort as cohort_sim

    name = f"sim-{patients}p-{days:g}d-seed{seed}" + ("-multimodal" if multimodal else "")
    path = launcher.cache_dir() / "cohorts" / name
    if not (path / "cohort.json").exists():
        err.print(f"# simulating a cohort into {path}", highlight=False)
        spec = cohort_sim.CohortSpec(patients=patients, days=days, seed=seed)
        cohort_sim.write(spec, path)
        if multimodal:
            from models.imaging_data import write_images
            from models.notes_corpus import write_notes

            write_notes(spec, path)
            write_images(spec, path)
    return path


def _installed_models(settings: Settings, multimodal: bool) -> Any:
    """The installed vitals model (and with `multimodal` the others), loaded now; fails
    without a vitals model."""
    from streams.scoring import ModelSet

    models = ModelSet.from_settings(settings)
    slots = [models.vitals]
    if multimodal:
        slots += [models.fusion, models.notes, models.imaging]
    for slot in slots:
        slot.refresh(force=True)
    if models.vitals.current is None:
        _fail(f"no valid vitals model in {settings.model_dir} (run `vigil train vitals`)")
    return models


@train.command("vitals")
def train_vitals(
    cohort_dir: Path | None = typer.Option(
        None, "--cohort", help="labelled cohort (default: simulate one from --seed)"
    ),
    seed: int = typer.Option(0, help="split and boosting seed; also the simulated cohort's"),
    patients: int = typer.Option(6000, min=10, help="patients of a simulated cohort"),
    days: float = typer.Option(3.0, min=0.5, help="days of a simulated cohort"),
) -> None:
    """Train the XGBoost vitals model and install it (the worker picks it up by itself)."""
    from models.train_vitals import train_and_install

    settings = Settings()
    path = _training_cohort(cohort_dir, seed, patients, days)
    started = time.monotonic()
    try:
        target, trained = train_and_install(path, settings.model_dir, seed)
    except ValueError as exc:
        _fail(str(exc))
    m = trained.manifest.metrics
    err.print(
        f"# installed {target} in {time.monotonic() - started:.1f}s: held-out AUROC "
        f"{m['auroc']:.3f} (NEWS2 {m['news2_auroc']:.3f}), AUPRC {m['auprc']:.3f}, "
        f"operating threshold {trained.manifest.operating_threshold:.3f}",
        highlight=False,
    )


def _train_and_report(train_and_install: Any, cohort_dir: Path, seed: int) -> None:
    started = time.monotonic()
    target, trained = train_and_install(cohort_dir, Settings().model_dir, seed)
    err.print(
        f"# installed {target} in {time.monotonic() - started:.1f}s: "
        f"{orjson.dumps(trained.manifest.metrics).decode()}",
        highlight=False,
    )


@train.command("notes")
def train_notes(
    cohort_dir: Path = typer.Option(..., "--cohort", help="cohort with notes.jsonl"),
    seed: int = typer.Option(0),
) -> None:
    """Train the notes model (sentence encoder + torch head) and install it."""
    from models.train_notes import train_and_install

    _train_and_report(train_and_install, cohort_dir, seed)


@train.command("imaging")
def train_imaging(
    cohort_dir: Path = typer.Option(..., "--cohort", help="cohort with imaging.jsonl"),
    seed: int = typer.Option(0),
) -> None:
    """Train the chest-image CNN and install it."""
    from models.train_imaging import train_and_install

    _train_and_report(train_and_install, cohort_dir, seed)


@train.command("fusion")
def train_fusion(
    cohort_dir: Path | None = typer.Option(
        None,
        "--cohort",
        help="multimodal cohort the other models never saw (default: simulate one)",
    ),
    seed: int = typer.Option(0, help="patient split seed"),
    cohort_seed: int = typer.Option(500, help="seed of the simulated cohort"),
    patients: int = typer.Option(4000, min=10, help="patients of a simulated cohort"),
) -> None:
    """Train the stacker that fuses the installed vitals, notes and imaging models' scores
    with NEWS2, and install it."""
    from models.train_fusion import train_and_install

    settings = Settings()
    models = _installed_models(settings, multimodal=True)
    for name in ("notes", "imaging"):
        if getattr(models, name).current is None:
            err.print(f"# no {name} model installed: the fusion will not use {name}")
    path = _training_cohort(cohort_dir, cohort_seed, patients, 3.0, multimodal=True)
    started = time.monotonic()
    try:
        target, trained = train_and_install(
            path,
            settings.model_dir,
            models.vitals.current,
            models.notes.current,
            models.imaging.current,
            seed,
        )
    except ValueError as exc:
        _fail(str(exc))
    by_score = trained.manifest.metrics["by_score"]
    err.print(
        f"# installed {target} in {time.monotonic() - started:.1f}s: out-of-fold AUROC "
        + ", ".join(f"{name} {row['auroc']:.3f}" for name, row in by_score.items()),
        highlight=False,
    )


def _report_table(rows: dict[str, dict[str, Any]], columns: list[tuple[str, str, int]]) -> Table:
    table = Table("score", *(title for title, _, _ in columns))
    for label, row in rows.items():
        table.add_row(
            label,
            *("–" if row[key] is None else f"{row[key]:.{digits}f}" for _, key, digits in columns),
        )
    return table


@app.command()
def evaluate(
    cohort_dir: Path | None = typer.Option(
        None, "--cohort", help="held-out labelled cohort (default: simulate one from --seed)"
    ),
    seed: int = typer.Option(1000, help="seed of the simulated held-out cohort"),
    patients: int = typer.Option(2000, min=10),
    days: float = typer.Option(3.0, min=0.5),
    multimodal: bool = typer.Option(
        False, help="each modality alone and fused (needs a fusion model and notes, films)"
    ),
    out: Path = typer.Option(Path("evaluation"), help="directory for report.md, JSON, plots"),
) -> None:
    """Evaluate the installed vitals model against NEWS2 on a held-out cohort, or (with
    --multimodal) each modality alone against the fused score."""
    settings = Settings()
    models = _installed_models(settings, multimodal)
    path = _training_cohort(cohort_dir, seed, patients, days, multimodal)
    command = " ".join(["vigil", *sys.argv[1:]])
    if multimodal:
        from models.evaluate_fusion import LABELS
        from models.evaluate_fusion import evaluate as run_multimodal

        if models.fusion.current is None:
            _fail(f"no fusion model in {settings.model_dir} (run `vigil train fusion`)")
        report = run_multimodal(
            path,
            models.vitals.current,
            models.notes.current,
            models.imaging.current,
            models.fusion.current,
            out,
            command,
        )
        rows = {LABELS[name]: row for name, row in report["by_score"].items()}
        columns = [("AUROC", "auroc", 3), ("AUPRC", "auprc", 3), ("Brier", "brier", 4)]
    else:
        from models.evaluate import evaluate as run_evaluation

        report = run_evaluation(path, models.vitals.current, out, command)
        rows = report["scores"]
        columns = [
            ("AUROC", "auroc", 3),
            ("AUPRC", "auprc", 3),
            ("sensitivity", "sensitivity", 2),
            ("PPV", "ppv", 2),
            ("alerts/35 pd", "alerts_per_35_patient_days", 2),
            ("lead (h)", "median_lead_h", 1),
        ]
    console.print(_report_table(rows, columns))
    err.print(f"# report in {out / 'report.md'}", highlight=False)


_LEVEL_STYLE = {"low": "green", "medium": "yellow", "high": "bold red", "critical": "reverse red"}


def _scores_table(latest: dict[str, dict], seen: int, since: float) -> Table:
    rate = seen / max(time.monotonic() - since, 1e-9)
    table = Table(title=f"Vigil ward — {len(latest)} patients, {seen} scores ({rate:.0f}/s)")
    for col in ("patient", "level", "fused", "NEWS2", "band", "as of (UTC)", "drivers"):
        table.add_column(col, no_wrap=True)
    order = {"critical": 0, "high": 1, "medium": 2, "low": 3}
    ranked = sorted(latest.values(), key=lambda r: (order[r["risk_level"]], -r["scores"]["fused"]))
    for r in ranked[:25]:
        style = _LEVEL_STYLE[r["risk_level"]]
        table.add_row(
            r["patient_id"],
            f"[{style}]{r['risk_level']}[/]",
            f"{r['scores']['fused']:.2f}",
            str(r["news2"]["total"]),
            r["news2"]["band"],
            r["as_of"][11:19],
            " ".join(c["feature"].removeprefix("news2_") for c in r["contributors"][:3]),
        )
    return table


@scores.command("tail")
def scores_tail(
    from_beginning: bool = typer.Option(False, help="start at the oldest score"),
    seconds: float = typer.Option(0, help="stop after this many seconds (0 = never)"),
) -> None:
    """Follow risk-scores.v1 as a live ward table, with the latest alerts below it."""
    settings = Settings()
    scores_topic = settings.topic(topics.SCORES)
    consumer = _follow(settings, [topics.SCORES, topics.ALERTS], from_beginning)
    latest: dict[str, dict] = {}
    recent_alerts: dict[str, dict] = {}
    seen, t0 = 0, time.monotonic()

    def view() -> Group:
        shown = list(recent_alerts.values())[-8:]
        lines = [Text.from_markup(format_alert(a)) for a in reversed(shown)]
        return Group(_scores_table(latest, seen, t0), Text("Latest alerts", style="bold"), *lines)

    try:
        with Live(view(), console=console, refresh_per_second=2) as live:
            while not seconds or time.monotonic() - t0 < seconds:
                for records in consumer.poll(timeout_ms=500).values():
                    for record in records:
                        value = orjson.loads(record.value)
                        if record.topic == scores_topic:
                            latest[value["patient_id"]] = value
                            seen += 1
                        else:
                            recent_alerts[value["alert_id"]] = value
                            if len(recent_alerts) > 50:
                                recent_alerts.pop(next(iter(recent_alerts)))
                live.update(view())
    except KeyboardInterrupt:
        pass
    finally:
        consumer.close()


_KIND_MARK = {"raised": "▲ RAISED", "escalated": "▲▲ ESCALATED", "cleared": "▼ cleared"}


def format_alert(alert: dict) -> str:
    """One alert as rich markup for people: level colour, patient, unit, reason, action."""
    style = _LEVEL_STYLE[alert["level"]] if alert["kind"] != "cleared" else "green"
    when = alert["raised_at"][11:19]
    unit = f" {alert['unit']}" if alert.get("unit") else ""
    return (
        f"[{style}]{_KIND_MARK[alert['kind']]} {alert['level'].upper()}[/] {when} "
        f"[bold]{alert['patient_id']}[/]{unit} — {alert['reason']}\n"
        f"    → {alert['recommended_action']}"
    )


@alerts.command("tail")
def alerts_tail(
    unit: list[str] = typer.Option([], help="only these units (repeatable)"),
    level: str = typer.Option("medium", help="only alerts at or above this level"),
    from_beginning: bool = typer.Option(False, help="start at the oldest alert"),
    seconds: float = typer.Option(0, help="stop after this many seconds (0 = never)"),
) -> None:
    """Print alerts for people as they arrive, each alert_id once."""
    from streams.alerts import LEVELS, rank

    if level not in LEVELS:
        _fail(f"--level must be one of {', '.join(LEVELS)}")
    consumer = _follow(Settings(), [topics.ALERTS], from_beginning)
    seen: set[str] = set()
    t0 = time.monotonic()
    try:
        while not seconds or time.monotonic() - t0 < seconds:
            for records in consumer.poll(timeout_ms=500).values():
                for record in records:
                    alert = orjson.loads(record.value)
                    if alert["alert_id"] in seen:
                        continue
                    seen.add(alert["alert_id"])
                    shown = (
                        alert["previous_level"] if alert["kind"] == "cleared" else alert["level"]
                    )
                    if rank(shown or "low") < rank(level) or (
                        unit and alert.get("unit") not in unit
                    ):
                        continue
                    console.print(format_alert(alert), highlight=False)
    except KeyboardInterrupt:
        pass
    finally:
        consumer.close()


def _demo_model(model_dir: Path, train_command: list[str]) -> None:
    """Train a vitals model on a simulated cohort the first time the demo runs."""
    from streams.scoring import ModelSet

    slot = ModelSet.from_settings(Settings(model_dir=model_dir)).vitals
    slot.refresh(force=True)
    if slot.current is not None:
        return
    err.print(f"# no vitals model in {model_dir}: training one (first run only)", highlight=False)
    env = {**os.environ, "VIGIL_MODEL_DIR": str(model_dir)}
    if subprocess.run(train_command, env=env).returncode != 0:
        _fail("training the demo's vitals model failed (see above)")


@app.command()
def demo(
    patients: int = typer.Option(24, min=1),
    rate: float = typer.Option(100.0, min=1, help="simulated events per second"),
    hours: float = typer.Option(12.0, min=0.1, help="simulated hours the ward replays"),
    seconds: float = typer.Option(0, help="stop after this many seconds (0 = Ctrl-C)"),
) -> None:
    """Local Kafka + Redis + worker + simulated ward, with live scores in the terminal."""
    env = dict(os.environ)
    if not (env.get("VIGIL_KAFKA_BOOTSTRAP") and env.get("VIGIL_REDIS_URL")):
        try:
            services, _ = launcher.dev_up()
        except launcher.ServiceError as exc:
            _fail(str(exc))
        env["VIGIL_KAFKA_BOOTSTRAP"] = services.kafka_bootstrap
        env["VIGIL_REDIS_URL"] = services.redis_url
    env.setdefault("VIGIL_TOPIC_PREFIX", "demo.")
    env.setdefault("VIGIL_MODEL_DIR", str(launcher.cache_dir() / "models"))
    logs = launcher.cache_dir() / "demo"
    logs.mkdir(parents=True, exist_ok=True)
    vigil = [sys.executable, "-m", "streams.cli"]
    _demo_model(Path(env["VIGIL_MODEL_DIR"]), [*vigil, "train", "vitals", "--patients", "1000"])
    children = []
    try:
        with (logs / "worker.log").open("ab") as wlog, (logs / "simulator.log").open("ab") as slog:
            children.append(subprocess.Popen([*vigil, "worker"], env=env, stdout=wlog, stderr=wlog))
            children.append(
                subprocess.Popen(
                    [
                        *vigil,
                        "simulate",
                        "--patients",
                        str(patients),
                        "--rate",
                        str(rate),
                        "--hours",
                        str(hours),
                    ],
                    env=env,
                    stdout=slog,
                    stderr=slog,
                )
            )
        err.print(
            f"# worker and simulator running (logs in {logs}); API on "
            f"http://127.0.0.1:{env.get('VIGIL_WEB_PORT', '6066')}/ — Ctrl-C to stop",
            highlight=False,
        )
        os.environ.update(env)
        scores_tail(from_beginning=True, seconds=seconds)
    finally:
        for child in children:
            child.terminate()
        for child in children:
            try:
                child.wait(timeout=15)
            except subprocess.TimeoutExpired:
                child.kill()


def main() -> None:
    app()


if __name__ == "__main__":
    main()
