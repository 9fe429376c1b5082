"""The XGBoost vitals model at run time: its input vector, prediction and explanation.

Training (`models/train_vitals.py`) and the worker build the input with the same
`design_matrix`, from features the tests prove equal between Redis and the offline code,
so there is one definition of what the model sees.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import xgboost as xgb

from features.news2 import PARAMETERS, News2Inputs, news2
from features.windows import FEATURE_NAMES, VITALS
from models.manifest import ModelManifest
from models.tree_shap import ShapTables
from streams.events import Contributor

NEWS2_FEATURES: tuple[str, ...] = (
    *(f"news2_{name}" for name in PARAMETERS),
    "news2_total",
    "spo2_scale",
)
"""The latest NEWS2 inputs (4 h look-back): they carry what the rolling windows do not
(oxygen, consciousness, the SpO2 scale) and the last manual set of patients without a
monitor, whose 1 h windows are mostly empty."""

_CHANGES = (("mean_1h", "mean_24h"), ("last_1h", "mean_24h"), ("mean_6h", "mean_24h"))
CHANGE_FEATURES: tuple[str, ...] = tuple(
    f"{vital}_{recent}_vs_{baseline}" for vital in VITALS for recent, baseline in _CHANGES
)
"""Recent values against the patient's own day: what tells a deteriorating patient from a
chronically abnormal one (COPD, AF), which trees find hard to learn from two columns."""
_CHANGE_COLUMNS = np.array(
    [
        (FEATURE_NAMES.index(f"{vital}_{recent}"), FEATURE_NAMES.index(f"{vital}_{baseline}"))
        for vital in VITALS
        for recent, baseline in _CHANGES
    ]
)

MODEL_FEATURES: tuple[str, ...] = (*FEATURE_NAMES, *CHANGE_FEATURES, *NEWS2_FEATURES)
TOP_CONTRIBUTORS = 5


def news2_row(inputs: News2Inputs | None, total: int | None = None) -> list[float]:
    """`NEWS2_FEATURES` of one patient: NaN (missing to XGBoost) where there is no value;
    `total`, where given, is `news2(inputs).total` computed already."""
    if inputs is None:
        return [math.nan] * len(NEWS2_FEATURES)
    row = []
    for name in PARAMETERS:
        value = getattr(inputs, name)
        if value is None:
            row.append(math.nan)
        elif name == "consciousness":
            row.append(0.0 if value == "A" else 1.0)
        else:
            row.append(float(value))
    row.append(float(news2(inputs).total if total is None else total))
    row.append(float(inputs.spo2_scale))
    return row


def design_matrix(
    rolling: np.ndarray | Sequence[Sequence[float | None]],
    news: Sequence[News2Inputs | None],
    totals: Sequence[int | None] | None = None,
) -> np.ndarray:
    """Rows in `MODEL_FEATURES` order from rolling features (`FEATURE_NAMES` order, None or
    NaN where empty) and the NEWS2 inputs of the same rows; NaN propagates to a change.
    `totals`: the rows' NEWS2 totals where the caller has them (the worker scores NEWS2
    anyway; computing it twice was 2 % of a live worker's time)."""
    left = np.asarray(rolling, dtype=np.float64).reshape(len(news), len(FEATURE_NAMES))
    changes = left[:, _CHANGE_COLUMNS[:, 0]] - left[:, _CHANGE_COLUMNS[:, 1]]
    totals = [None] * len(news) if totals is None else totals
    rows = [news2_row(n, t) for n, t in zip(news, totals, strict=True)]
    right = np.array(rows, dtype=np.float64).reshape(len(news), -1)
    return np.hstack([left, changes, right])


def display_value(feature: str, value: float, inputs: News2Inputs | None) -> float | str | None:
    """A contributor's value as a clinician reads it (the AVPU letter, not its code)."""
    if math.isnan(value):
        return None
    if feature == "news2_consciousness" and inputs is not None:
        return inputs.consciousness
    return round(value, 4)


@dataclass(frozen=True, slots=True)
class VitalsPrediction:
    probability: float
    margin: float
    """The booster's log-odds; the contributions plus the bias sum to it."""
    contributors: list[Contributor]


def _matrix(x: np.ndarray) -> xgb.DMatrix:
    # One thread, like the booster: with XGBoost's default of all cores, building the
    # matrix waits on a thread the busy second core runs late (measured: 16 ms for one row
    # instead of 0.4 ms, whatever the batch size, with another process busy on the other
    # core).
    return xgb.DMatrix(x, missing=np.nan, feature_names=list(MODEL_FEATURES), nthread=1)


class VitalsModel:
    """A loaded vitals model: the booster, its calibration and its manifest."""

    def __init__(self, manifest: ModelManifest, booster: xgb.Booster) -> None:
        self.manifest = manifest
        self.booster = booster
        self.a = manifest.calibration["a"]
        self.b = manifest.calibration["b"]
        self.shap = ShapTables.build(booster, len(MODEL_FEATURES))

    @property
    def version(self) -> str:
        return self.manifest.version

    @classmethod
    def load(cls, directory: Path, manifest: ModelManifest) -> VitalsModel:
        booster = xgb.Booster()
        booster.load_model(bytearray((directory / manifest.artifact).read_bytes()))
        booster.set_param({"nthread": 1})
        return cls(manifest, booster)

    def calibrate(self, margin: np.ndarray) -> np.ndarray:
        """Platt scaling fitted on patients held out of training (see the manifest)."""
        return 1.0 / (1.0 + np.exp(-(self.a * margin + self.b)))

    def probabilities(self, x: np.ndarray) -> np.ndarray:
        """Calibrated probabilities alone, for whole cohorts where nobody reads the SHAP."""
        margin = self.booster.predict(_matrix(x), output_margin=True)
        return self.calibrate(margin.astype(np.float64))

    def contributions(self, x: np.ndarray) -> np.ndarray:
        """XGBoost's own TreeSHAP values, one column per feature plus the bias last: from
        the tables of models/tree_shap.py where the trees allow them."""
        if self.shap is not None:
            return self.shap.contributions(x)
        return self.booster.predict(_matrix(x), pred_contribs=True)

    def predict(self, x: np.ndarray, news: Sequence[News2Inputs | None]) -> list[VitalsPrediction]:
        """One call for a whole batch: SHAP values give the margin too (they sum to it)."""
        if len(x) == 0:
            return []
        contribs = self.contributions(x)
        margins = contribs.sum(axis=1, dtype=np.float64)
        probabilities = self.calibrate(margins).tolist()
        top = np.argsort(-np.abs(contribs[:, :-1]), axis=1, kind="stable")[:, :TOP_CONTRIBUTORS]
        picked = np.take_along_axis(contribs, top, axis=1).tolist()
        values = np.take_along_axis(x, top, axis=1).tolist()
        out = []
        for i, inputs in enumerate(news):
            out.append(
                VitalsPrediction(
                    probability=probabilities[i],
                    margin=float(margins[i]),
                    contributors=[
                        # validated: pydantic-core's __init__ is twice as fast as
                        # model_construct, which runs in Python (1.0 against 2.2 µs)
                        Contributor(
                            feature=MODEL_FEATURES[f],
                            value=display_value(MODEL_FEATURES[f], v, inputs),
                            contribution=round(c, 4),
                        )
                        for f, v, c in zip(top[i].tolist(), values[i], picked[i], strict=True)
                    ],
                )
            )
        return out
