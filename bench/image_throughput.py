"""Image model images/s by batch size, as the worker calls it (`ImageModel.predict`).

    python -m bench.image_throughput [--device auto|cpu|cuda] [--threads 1] [--seconds 2]

Runs an untrained ChestNet of the production architecture (speed does not depend on the
weights) on random preprocessed images; prints a table, then the results as JSON.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from models.image_model import IMAGE_SIZE, ImageModel
from models.manifest import install
from tests.modelkit import tiny_image_model

BATCHES = (1, 8, 32, 128)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seconds", type=float, default=2.0)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        manifest, artifact = tiny_image_model(0)
        folder = install(Path(tmp), manifest, artifact)
        model = ImageModel.load(folder, manifest, device=args.device)
    rng = np.random.default_rng(0)
    results = []
    for batch in BATCHES:
        x = rng.normal(size=(batch, IMAGE_SIZE, IMAGE_SIZE)).astype(np.float32)
        model.predict(x)  # warm-up
        done, started = 0, time.perf_counter()
        while time.perf_counter() - started < args.seconds:
            model.predict(x)
            done += batch
        rate = done / (time.perf_counter() - started)
        results.append({"batch": batch, "images_per_s": rate})
        print(f"batch {batch:4d}: {rate:8.0f} images/s on {model.device}")
    summary = {"device": str(model.device), "threads": args.threads, "torch": torch.__version__}
    print(json.dumps({**summary, "results": results}, indent=2))


if __name__ == "__main__":
    main()
