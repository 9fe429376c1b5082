"""Notes model notes/s by batch size, as the worker calls it (`NotesModel.score`, with the
leave-one-sentence-out explanations).

    python -m bench.notes_throughput [--seconds 5] [--threads 1]

An untrained head of the production shape over the real encoder (speed does not depend
on the head's weights), on the notes of a small simulated cohort in stream order, each
note scored once (copy-forward sentences hit the encoder's sentence cache, as they would
in the worker). Prints a table, then JSON.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from models import cohort
from models.manifest import install
from models.notes_corpus import write_notes
from models.text_model import NotesModel
from models.train_notes import read_notes
from tests.modelkit import tiny_notes_model

BATCHES = (1, 8, 32)


def measure(seconds: float, threads: int) -> dict[str, Any]:
    """Notes/s of each batch size in `BATCHES`, each timed for up to `seconds`."""
    torch.set_num_threads(threads)
    with tempfile.TemporaryDirectory() as tmp:
        spec = cohort.CohortSpec(patients=120, days=3.0, seed=5)
        cohort.write(spec, Path(tmp))
        write_notes(spec, Path(tmp))
        texts = [n.text for n in read_notes(Path(tmp))]
        manifest, artifact = tiny_notes_model(0)
        model = NotesModel.load(install(Path(tmp) / "m", manifest, artifact), manifest, "cpu")
    model.score(texts[:1])  # warm-up: the encoder's first call
    at, results = 1, []
    for batch in BATCHES:
        done, started = 0, time.perf_counter()
        while time.perf_counter() - started < seconds and at + batch <= len(texts):
            model.score(texts[at : at + batch])
            at += batch
            done += batch
        results.append({"batch": batch, "notes_per_s": done / (time.perf_counter() - started)})
    return {"device": "cpu", "threads": threads, "results": results}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    summary = measure(args.seconds, args.threads)
    for r in summary["results"]:
        print(f"batch {r['batch']:3d}: {r['notes_per_s']:6.1f} notes/s")
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
