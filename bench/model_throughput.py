"""Vitals model rows/s by batch size, as the worker calls it (prediction + TreeSHAP + top 5),
beside XGBoost's own `pred_contribs` (what models/tree_shap.py's tables replace) and a bare
margin prediction on the same rows.

    python -m bench.model_throughput [--model-dir DIR] [--seconds 2]

Uses the newest valid model in the model directory (VIGIL_MODEL_DIR), on rows drawn from a
small simulated cohort so that missing values and magnitudes are realistic. Prints a table,
then the results as JSON.
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import xgboost as xgb

from models import cohort
from models.dataset import build
from models.registry import ModelSlot
from models.vitals_model import MODEL_FEATURES, VitalsModel
from streams.settings import Settings

BATCHES = (1, 8, 32, 128, 512)


def _rate(call: Callable[[], object], batch: int, seconds: float) -> float:
    """Rows per second of `call` (one batch per call) repeated for `seconds`."""
    done, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        call()
        done += batch
    return done / (time.perf_counter() - started)


def load(model_dir: Path) -> VitalsModel | None:
    """The newest valid vitals model in `model_dir`, as the worker would load it."""
    slot = ModelSlot(model_dir, "vitals", MODEL_FEATURES, VitalsModel.load)
    slot.refresh(force=True)
    return slot.current


def measure(model: VitalsModel, seconds: float) -> dict[str, Any]:
    """Rows/s of each batch size in `BATCHES`, each call timed for `seconds`."""
    with tempfile.TemporaryDirectory() as tmp:
        cohort.write(cohort.CohortSpec(patients=60, days=1.0, seed=9), Path(tmp))
        rows = build(Path(tmp)).x
    results = []
    for batch in BATCHES:
        x = rows[np.arange(batch) % len(rows)]
        news = [None] * batch
        matrix = xgb.DMatrix(x, missing=np.nan, feature_names=list(MODEL_FEATURES), nthread=1)
        results.append(
            {
                "batch": batch,
                "rows_per_s": _rate(partial(model.predict, x, news), batch, seconds),
                "xgboost_pred_contribs_rows_per_s": _rate(
                    partial(model.booster.predict, matrix, pred_contribs=True), batch, seconds
                ),
                "margin_only_rows_per_s": _rate(
                    partial(model.booster.predict, matrix, output_margin=True), batch, seconds
                ),
            }
        )
    return {
        "model": model.version,
        "trees": model.manifest.training.get("rounds"),
        "machine": {"python": platform.python_version(), "cpu": platform.processor()},
        "xgboost": xgb.__version__,
        "shap": "tables" if model.shap is not None else "xgboost pred_contribs",
        "results": results,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model-dir", type=Path, default=Settings().model_dir)
    parser.add_argument("--seconds", type=float, default=2.0)
    args = parser.parse_args()
    model = load(args.model_dir)
    if model is None:
        raise SystemExit(f"no valid vitals model in {args.model_dir}: run `vigil train vitals`")
    summary = measure(model, args.seconds)
    for r in summary["results"]:
        print(
            f"batch {r['batch']:4d}: {r['rows_per_s']:9.0f} rows/s with SHAP top 5, "
            f"{r['xgboost_pred_contribs_rows_per_s']:9.0f} XGBoost pred_contribs, "
            f"{r['margin_only_rows_per_s']:9.0f} margin only"
        )
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
