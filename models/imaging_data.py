"""Simulated chest radiographs of the cohort's patients, drawn from their hidden state.

Why simulate: no chest films can be shipped or downloaded here, and only a simulation knows
what each film truly shows. Why this much anatomy: a model that only has to tell a white
blob from a black square learns nothing that survives a real film, so each image is built
the way a radiograph forms. Soft-tissue, bone and air densities add along the beam (lungs
dark, heart and mediastinum white, ribs and clavicles crossing the lung fields, the
diaphragm domes and the costophrenic angles), then the detector adds scatter, blur and
quantum noise that grows where fewer photons arrive, under an exposure that differs between
films. What makes it hard is what makes real films hard: positioning (rotation, AP
magnification of the heart, poor inspiration crowding the bases), collimation edges, ECG
electrodes and wires, sternotomy wires, pacemakers, breast shadows and elevated
hemidiaphragms that whiten a base, old scars and calcified granulomas, and findings that
are faint, small, or hidden behind the heart.

The findings come from the hidden state: consolidation (patchy air-space opacity in one
lung zone, more likely and larger with `consolidation`), pleural effusion (a basal opacity
with a meniscus that blunts the costophrenic angle, from `fluid_overload`, with perihilar
oedema haze beside it), and cardiomegaly in heart failure. Whether a film shows a finding
is drawn per film, so a mild state may give a normal film; the labels record what was
drawn, not the state.

Reproducible like the cohort: each patient draws from its own generator keyed by
(seed, patient index), and each film from one keyed by (seed, patient index, film number).
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import orjson
from PIL import Image
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import (
    ComputedRadiographyImageStorage,
    DigitalXRayImageStorageForPresentation,
    ExplicitVRLittleEndian,
    generate_uid,
)
from scipy.ndimage import gaussian_filter
from scipy.special import expit

from models import cohort
from models.cohort import CohortSpec, HiddenState, PatientCourse
from models.eventlog import isoformat

GENERATOR = "vigil-imaging-1"
SIZE = 256
"""Pixels per side: a real film has ~2,000, but every finding simulated here is larger
than a few millimetres, and the model sees 128 pixels anyway."""
FIELD_MM = 360.0
"""Width of the detector: a 36 cm cassette, so one pixel is 1.4 mm."""
BITS_STORED = 12
IMAGES_DIR = "images"
STUDIES_FILE = "imaging.jsonl"
LABELS_FILE = "imaging_labels.jsonl"
INFO_FILE = "imaging.json"
CHEST_CAUSES = ("sepsis", "respiratory_failure", "heart_failure")
"""Deteriorations a ward images daily; the others get at most a film before transfer."""

_IMAGING = 2  # stream number beside the cohort's course (0) and observations (1)
_UID_ROOT = "vigil-imaging"


@dataclass(frozen=True)
class Anatomy:
    """The patient's own chest, the same on every film of theirs. Units are the half-width
    of the image (the image spans -1..1); `y` grows towards the feet, `x` towards the
    patient's left, as a PA film is displayed."""

    thorax: float
    """Half-width of the rib cage at the bases."""
    body: float
    """Half-width of the soft tissue: the thorax plus fat."""
    apex: float
    base: float
    """Height of the diaphragm domes at full inspiration."""
    dome: float
    right_raised: float
    """The right dome sits higher (the liver), more so with an elevated hemidiaphragm."""
    left_raised: float
    ctr: float
    """Cardiothoracic ratio on a PA film; above 0.5 is cardiomegaly."""
    heart_dx: float
    mediastinum: float
    rib_spacing: float
    rib_phase: float
    breasts: float
    """Size of the breast shadows over the bases, 0 for none."""
    gastric_bubble: bool
    scar: tuple[float, float, float] | None
    """An old linear scar: (side, height, angle)."""
    granulomas: tuple[tuple[float, float], ...]
    sternotomy: bool
    pacemaker: bool
    texture_seed: int
    """Keeps the lung markings of one patient alike between films."""


@dataclass(frozen=True)
class Radiograph:
    pixels: np.ndarray
    """uint16, `BITS_STORED` bits, MONOCHROME2 (bright = dense)."""
    view: str
    consolidation: bool
    effusion: bool


@dataclass(frozen=True)
class Study:
    """One film of one patient: when, what was wrong, and how to draw it again."""

    patient_id: str
    number: int
    acquired_at: datetime
    state: HiddenState
    anatomy: Anatomy
    view: str
    modality: str
    seed: np.random.SeedSequence

    @property
    def study_uid(self) -> str:
        return self._uid("study")

    @property
    def series_uid(self) -> str:
        return self._uid("series")

    @property
    def sop_uid(self) -> str:
        return self._uid("instance")

    def _uid(self, level: str) -> str:
        """Derived from the seed, so the same cohort gives the same UIDs on every run."""
        key = [_UID_ROOT, str(self.seed.entropy), *map(str, self.seed.spawn_key), level]
        return generate_uid(entropy_srcs=key)

    def radiograph(self) -> Radiograph:
        return radiograph(self.state, np.random.default_rng(self.seed), self.anatomy, self.view)


def anatomy(rng: np.random.Generator, heart_failure: bool) -> Anatomy:
    """One patient's chest; heart failure brings a large heart and more often the scars of
    cardiac surgery and a pacemaker."""
    thorax = rng.uniform(0.56, 0.68)
    ctr = float(np.clip(rng.normal(0.45, 0.03), 0.38, 0.52))
    if heart_failure:
        ctr += rng.uniform(0.07, 0.14)
    elif rng.random() < 0.06:  # a large heart without failure: a hard negative
        ctr += rng.uniform(0.05, 0.1)
    raised = rng.uniform(0.06, 0.12) if rng.random() < 0.05 else 0.0
    raised_right = rng.random() < 0.5
    scar = None
    if rng.random() < 0.1:
        scar = (float(rng.choice((-1.0, 1.0))), rng.uniform(-0.45, 0.25), rng.uniform(-0.4, 0.4))
    granulomas = tuple(
        (rng.uniform(-0.55, 0.55), rng.uniform(-0.5, 0.35)) for _ in range(rng.poisson(0.25))
    )
    return Anatomy(
        thorax=thorax,
        body=thorax + rng.uniform(0.07, 0.22),
        apex=rng.uniform(-0.76, -0.66),
        base=rng.uniform(0.4, 0.54),
        dome=rng.uniform(0.07, 0.13),
        right_raised=rng.uniform(0.0, 0.05) + (raised if raised_right else 0.0),
        left_raised=0.0 if raised_right else raised,
        ctr=ctr,
        heart_dx=rng.normal(0.0, 0.02),
        mediastinum=rng.uniform(0.07, 0.1),
        rib_spacing=rng.uniform(0.105, 0.125),
        rib_phase=rng.uniform(0, 1),
        breasts=rng.uniform(0.14, 0.3) if rng.random() < 0.5 else 0.0,
        gastric_bubble=bool(rng.random() < 0.6),
        scar=scar,
        granulomas=granulomas,
        sternotomy=bool(rng.random() < (0.25 if heart_failure else 0.04)),
        pacemaker=bool(rng.random() < (0.2 if heart_failure else 0.03)),
        texture_seed=int(rng.integers(2**31)),
    )


@dataclass(frozen=True)
class _Film:
    """How this film was taken."""

    view: str
    angle: float
    scale: float
    dx: float
    dy: float
    inspiration: float
    """Positive: a poor breath, domes higher and the heart broader."""
    gamma: float
    gain: float
    offset: float
    noise: float
    heel: float
    collimation: tuple[float, float, float, float]
    electrodes: int


def _film(rng: np.random.Generator, view: str) -> _Film:
    ap = view == "AP"
    collimated = rng.random() < 0.3
    return _Film(
        view=view,
        angle=float(np.clip(rng.normal(0, math.radians(2.5)), -0.12, 0.12)),
        scale=rng.uniform(0.92, 1.06),
        dx=rng.normal(0, 0.03),
        dy=rng.normal(0, 0.03),
        inspiration=rng.normal(0.05 if ap else 0.0, 0.03),
        gamma=rng.uniform(0.85, 1.15),
        gain=rng.uniform(2600, 3400),
        offset=rng.uniform(150, 450),
        noise=rng.uniform(12, 40) * (1.4 if ap else 1.0),
        heel=rng.uniform(-0.05, 0.05),
        collimation=tuple(rng.uniform(0, 0.08, 4)) if collimated else (0.0, 0.0, 0.0, 0.0),
        electrodes=int(rng.integers(3, 6)) if rng.random() < (0.7 if ap else 0.15) else 0,
    )


def _band(distance: np.ndarray, half_width: float, edge: float = 0.006) -> np.ndarray:
    return expit((half_width - np.abs(distance)) / edge)


def _ellipse(
    x: np.ndarray, y: np.ndarray, cx: float, cy: float, rx: float, ry: float, tilt: float = 0.0
) -> Any:
    """The thickness of an ellipsoid along the beam: 1 in the middle, 0 at the rim."""
    cos, sin = math.cos(tilt), math.sin(tilt)
    u, v = x - cx, y - cy
    r2 = ((cos * u + sin * v) / rx) ** 2 + ((cos * v - sin * u) / ry) ** 2
    return np.sqrt(np.clip(1 - r2, 0, 1))


def _segment(x: np.ndarray, y: np.ndarray, a: tuple[float, float], b: tuple[float, float]) -> Any:
    """Distance of each point to the segment a-b."""
    ax, ay = a
    vx, vy = b[0] - ax, b[1] - ay
    t = np.clip(((x - ax) * vx + (y - ay) * vy) / (vx * vx + vy * vy), 0, 1)
    return np.hypot(x - ax - t * vx, y - ay - t * vy)


@dataclass(frozen=True)
class _Lung:
    air: np.ndarray
    """Air along the beam: the lung's mask times its depth."""
    u: np.ndarray
    """0 at the mediastinum, 1 at the lateral chest wall."""
    diaphragm: np.ndarray
    """Height of this side's dome at each column."""


def _lung(x: np.ndarray, y: np.ndarray, side: float, a: Anatomy, base: float) -> _Lung:
    medial = side * a.mediastinum
    height = np.clip((y - a.apex) / (base - a.apex), 0, 1)
    lateral = side * a.thorax * (0.72 + 0.28 * np.sqrt(height))
    u = (x - medial) / (lateral - medial)
    top = a.apex + 0.4 * (u - 0.3) ** 2
    uc = np.clip(u, 0, 1)
    diaphragm = base - a.dome * np.clip(np.sin(np.pi * uc), 0, 1) ** 0.7 + 0.05 * uc**4
    e = 0.012
    mask = (
        expit((y - top) / e)
        * expit((diaphragm - y) / e)
        * expit(u / (e / a.thorax))
        * expit((1 - u) / (e / a.thorax))
    )
    return _Lung(mask * (0.55 + 0.45 * np.sin(np.pi * uc)), u, diaphragm)


def _ribs(x: np.ndarray, y: np.ndarray, lung: _Lung, a: Anatomy) -> Any:
    """Posterior ribs curve down from the spine; anterior ribs, fainter, slope the other
    way. Their edges are what a CNN latches onto first, so they must be there."""
    uc = np.clip(lung.u, 0, 1.1)
    inside = expit((1.08 - lung.u) / 0.03) * expit((lung.u + 0.35) / 0.03)
    total = np.zeros_like(x)
    for curve, width, density in ((0.22, 0.022, 0.08), (-0.16, 0.017, 0.035)):
        phase = (y - a.apex - 0.02 - curve * uc**1.5) / a.rib_spacing + a.rib_phase
        frac = phase - np.round(phase)
        count = expit(phase / 0.1) * expit((10.5 - phase) / 0.1)
        total += density * _band(frac * a.rib_spacing, width) * count * inside
    return total


def radiograph(
    state: HiddenState,
    rng: np.random.Generator,
    body: Anatomy | None = None,
    view: str | None = None,
) -> Radiograph:
    """A film of `state`; `body` and `view` are drawn from `rng` when not given. Layout,
    findings and noise use separate streams, so that two films from the same generator
    that differ in the state differ only where the findings are."""
    layout_rng, finding_rng, noise_rng = (
        np.random.default_rng(s) for s in rng.integers(0, 2**63, size=3)
    )
    a = body if body is not None else anatomy(layout_rng, state.syndrome == "heart_failure")
    if view is None:
        view = "AP" if layout_rng.random() < 0.25 + 0.7 * state.severity else "PA"
    f = _film(layout_rng, view)
    ap = view == "AP"

    lin = (np.arange(SIZE, dtype=np.float32) + 0.5) / SIZE * 2 - 1
    yy, xx = np.meshgrid(lin, lin, indexing="ij")
    cos, sin = math.cos(f.angle), math.sin(f.angle)
    x = (cos * xx + sin * yy) / f.scale + f.dx
    y = (-sin * xx + cos * yy) / f.scale + f.dy

    base = a.base - f.inspiration
    right = _lung(x, y, -1.0, a, base - a.right_raised)
    left = _lung(x, y, 1.0, a, base - a.left_raised)

    neck = 0.16 + (a.body - 0.16) * expit((y + 0.8) / 0.04)
    width = np.minimum(neck, a.body)
    soft = np.sqrt(np.clip(1 - (x / width) ** 2, 0, 1)) * expit((width - np.abs(x)) / 0.01)
    density = 0.9 * soft

    fluid = float(state.fluid_overload)
    magnify = 1.12 if ap else 1.0
    heart_half = a.ctr * a.thorax * magnify * (1 + 0.8 * f.inspiration)
    if state.syndrome == "heart_failure":
        heart_half *= 1 + 0.08 * fluid
    hx, hy = a.heart_dx + 0.3 * heart_half, base - 0.17
    heart = np.clip(2.5 * _ellipse(x, y, hx, hy, heart_half, 0.75 * heart_half, 0.35), 0, 1)
    mediastinum = _band(x, a.mediastinum + 0.03 * expit((y + 0.2) / 0.1), 0.01) * expit(
        (base - y) / 0.02
    )
    aortic_knob = _ellipse(x, y, a.mediastinum + 0.04, -0.36, 0.055, 0.05)
    density += 0.12 * heart + 0.15 * mediastinum + 0.12 * aortic_knob

    spine = _band(x, 0.055, 0.01) * (1 + 0.12 * np.cos(2 * np.pi * y / 0.09))
    trachea = _band(x, 0.028, 0.008) * expit((y + 0.95) / 0.02) * expit((-0.3 - y) / 0.02)
    density += 0.1 * spine - 0.14 * trachea

    texture_rng = np.random.default_rng(a.texture_seed)
    texture = gaussian_filter(texture_rng.standard_normal((SIZE, SIZE)), 1.6)
    texture /= texture.std()
    lung_density = np.zeros_like(x)
    findings = {"consolidation": False, "effusion": False}
    for side, lung in ((-1.0, right), (1.0, left)):
        air = lung.air * (1 - 0.85 * heart)  # the heart lies in front of the lung
        hilum = np.hypot(x - side * (a.mediastinum + 0.06), y + 0.02)
        markings = 0.1 * np.clip(texture, 0, None) * np.exp(-hilum / 0.35)
        filled = 0.18 * fluid * np.exp(-((hilum / 0.3) ** 2))  # perihilar oedema haze
        lung_density += -0.7 * air + air * (markings + 0.2 * np.exp(-((hilum / 0.08) ** 2)))
        density += _ribs(x, y, lung, a)
        for finding, opacity in _findings(finding_rng, state, side, lung, x, y):
            findings[finding] = True
            filled = np.maximum(filled, opacity)
        lung_density += 0.75 * air * np.clip(filled, 0, 1)
    density += lung_density * expit((a.body - np.abs(x)) / 0.02)

    for side in (-1.0, 1.0):
        raise_by = 0.05 if ap else 0.0
        start = (side * 0.06, -0.74 - raise_by)
        end = (side * (a.thorax + 0.02), -0.83 - raise_by)
        density += 0.28 * _band(_segment(x, y, start, end), 0.022, 0.008)
        if ap:  # the scapulae stay over the lung edges when the arms are not forward
            density += 0.12 * _ellipse(x, y, side * (a.thorax - 0.02), -0.38, 0.13, 0.3)
        if a.breasts:
            density += 0.2 * _ellipse(x, y, side * 0.36, base + 0.02, a.breasts * 1.4, a.breasts)
    if a.gastric_bubble:
        density -= 0.3 * _ellipse(x, y, 0.3, base - a.left_raised + 0.1, 0.07, 0.04)
    density += _devices(x, y, a, f, layout_rng, heart_half, (hx, hy))

    return Radiograph(_expose(density, f, xx, yy, noise_rng), view, **findings)


def _findings(
    rng: np.random.Generator,
    state: HiddenState,
    side: float,
    lung: _Lung,
    x: np.ndarray,
    y: np.ndarray,
) -> list[tuple[str, np.ndarray]]:
    """Opacities in one lung as shares of its air replaced: patchy blobs clustered in one
    zone for consolidation (a second zone when severe), a meniscus for effusion. The right
    lung is more often affected (aspiration), and either may be both."""
    found = []
    c = state.consolidation
    p_side = 0.6 if side < 0 else 0.4
    if rng.random() < np.clip((c - 0.08) / 0.25, 0, 1) * p_side * (1.6 if c > 0.6 else 1.0):
        zone = rng.choice((0.2, 0.5, 0.8), p=(0.25, 0.3, 0.45))
        centre_u = rng.uniform(0.3, 0.75)
        patch = np.zeros_like(x)
        for _ in range(3 + int(8 * c)):
            bu = centre_u + rng.normal(0, 0.12 + 0.1 * c)
            bz = zone + rng.normal(0, 0.07 + 0.08 * c)
            r = rng.uniform(0.05, 0.09) * (0.8 + 0.6 * c)
            cx = side * (0.08 + bu * 0.55)
            cy = -0.65 + bz * 1.1
            patch += np.exp(-(((x - cx) ** 2 + (y - cy) ** 2) / (2 * r * r)))
        mottle = gaussian_filter(rng.standard_normal(x.shape), 2.5)
        mottle /= mottle.std()
        strength = rng.uniform(0.75, 1.0) * (0.8 + 0.2 * c)
        opacity = (1 - np.exp(-3 * patch)) * np.clip(0.85 + 0.2 * mottle, 0, 1)
        found.append(("consolidation", strength * opacity))
    fl = state.fluid_overload
    p_side = 0.65 if side < 0 else 0.5
    if rng.random() < np.clip((fl - 0.12) / 0.25, 0, 1) * p_side * 1.5:
        depth = (0.05 + 0.28 * fl) * rng.uniform(0.7, 1.3)
        uc = np.clip(lung.u, 0, 1)
        level = lung.diaphragm.max() - depth - rng.uniform(0.06, 0.14) * uc**2
        found.append(("effusion", expit((y - level) / 0.02)))
    return found


def _devices(
    x: np.ndarray,
    y: np.ndarray,
    a: Anatomy,
    f: _Film,
    rng: np.random.Generator,
    heart_half: float,
    heart: tuple[float, float],
) -> np.ndarray:
    """Metal and lines over the chest, and small dense things inside it: what a model must
    learn to look through."""
    out = np.zeros_like(x)
    for _ in range(f.electrodes):
        ex, ey = rng.uniform(-a.thorax, a.thorax), rng.uniform(-0.7, 0.55)
        ring = np.hypot(x - ex, y - ey)
        out += 0.5 * _band(ring, 0.02, 0.004)
        wx, wy = ex + rng.normal(0, 0.2), ey - rng.uniform(0.2, 0.6)
        out += 0.3 * _band(_segment(x, y, (ex, ey), (wx, wy)), 0.004, 0.003)
    if a.sternotomy:
        for wy in np.linspace(-0.5, 0.1, 5):
            out += 0.9 * _band(np.hypot(x - 0.01, y - wy) - 0.014, 0.004, 0.003)
    if a.pacemaker:
        px, py = 0.42, -0.62
        out += 1.1 * expit(-np.maximum(np.abs(x - px) - 0.05, np.abs(y - py) - 0.035) / 0.004)
        tip = (heart[0] - 0.2 * heart_half, heart[1] + 0.3 * heart_half)
        out += 0.6 * _band(_segment(x, y, (px, py), (0.05, -0.3)), 0.004, 0.003)
        out += 0.6 * _band(_segment(x, y, (0.05, -0.3), tip), 0.004, 0.003)
    if a.scar is not None:
        side, sy, angle = a.scar
        cx = side * 0.35
        half = (0.12 * math.cos(angle), 0.12 * math.sin(angle))
        line = _segment(x, y, (cx - half[0], sy - half[1]), (cx + half[0], sy + half[1]))
        out += 0.22 * _band(line, 0.008, 0.005)
    for gx, gy in a.granulomas:
        out += 0.5 * _band(np.hypot(x - gx, y - gy), 0.012, 0.004)
    marker = (0.8 if rng.random() < 0.5 else -0.8, -0.85)
    out += 1.2 * _band(np.maximum(np.abs(x - marker[0]), np.abs(y - marker[1])), 0.03, 0.004)
    return out


def _expose(
    density: np.ndarray, f: _Film, xx: np.ndarray, yy: np.ndarray, rng: np.random.Generator
) -> np.ndarray:
    """Density to detector counts: unsharpness, a scatter veil that lowers contrast,
    quantum noise that grows with attenuation (fewer photons through dense parts), a heel
    effect, and unexposed (white) strips where the beam was collimated."""
    p = np.clip(density, 0, None) / 1.25
    p = gaussian_filter(p, 0.7)
    p = 0.85 * p + 0.15 * gaussian_filter(p, 12)
    p = np.clip(p, 0, 1.2) ** f.gamma
    noise = rng.standard_normal(p.shape) * f.noise * np.exp(1.2 * p)
    rows = rng.standard_normal((p.shape[0], 1)) * f.noise * 0.15
    counts = (f.offset + f.gain * p) * (1 + f.heel * yy) + noise + rows
    left, right, top, bottom = f.collimation
    shut = (xx < -1 + 2 * left) | (xx > 1 - 2 * right) | (yy < -1 + 2 * top) | (yy > 1 - 2 * bottom)
    counts = np.where(shut, 3900 + noise * 0.5, counts)
    top_value = 2**BITS_STORED - 1
    return np.clip(np.round(counts), 0, top_value).astype(np.uint16)


def render(state: HiddenState, rng: np.random.Generator) -> np.ndarray:
    """Pixels of a film of `state` from a patient drawn by `rng`."""
    return radiograph(state, rng).pixels


def _hours(c: PatientCourse, t: datetime) -> float:
    return (t - c.origin).total_seconds() / 3600


def _schedule(c: PatientCourse, rng: np.random.Generator) -> list[float]:
    """Hours of the patient's chest films, as a ward orders them: an admission film for
    some (more with COPD, fewer for patients already on the ward when the cohort starts),
    films when a chest cause declares itself and daily while it lasts, one before an
    event, a film for a post-operative fever, and now and then one for no finding."""
    admit_h, leave_h = _hours(c, c.admitted_at), _hours(c, c.discharged_at)
    hours: list[float] = []
    p_admission = (0.7 if c.baseline.kind == "copd" else 0.5) * (
        1.0 if c.admitted_at > c.origin else 0.25
    )
    if rng.random() < p_admission:
        hours.append(admit_h + rng.uniform(0.3, 3.0))
    d = c.deterioration
    if d is not None:
        chest = d.syndrome in CHEST_CAUSES
        grid = np.arange(admit_h, leave_h, 0.25)
        severity = c.physiology(grid)["severity"]
        hit = np.flatnonzero(severity >= rng.uniform(0.15, 0.4))
        if hit.size and rng.random() < (0.9 if chest else 0.3):
            t = float(grid[hit[0]]) + rng.uniform(0.25, 2.0)
            hours.append(t)
            while chest:
                t += rng.uniform(10, 26)
                if t >= leave_h or np.interp(t, grid, severity) < 0.1:
                    break
                if rng.random() < 0.7:
                    hours.append(t)
        if c.event_at is not None and rng.random() < (0.5 if chest else 0.2):
            hours.append(_hours(c, c.event_at) - rng.uniform(0.2, 1.5))
    for episode in c.episodes:
        if episode.kind == "post_op_fever" and rng.random() < 0.3:
            hours.append(episode.start_h + episode.duration_h * rng.uniform(0.3, 0.7))
    days = (leave_h - admit_h) / 24
    hours.extend(rng.uniform(admit_h, leave_h, rng.poisson(0.04 * days)))
    kept: list[float] = []
    for h in sorted(h for h in hours if admit_h <= h < leave_h):
        if not kept or h - kept[-1] >= 1.0:
            kept.append(h)
    return kept


def patient_studies(spec: CohortSpec, c: PatientCourse) -> list[Study]:
    """One patient's films, drawn from that patient's generators only."""
    rng = np.random.default_rng(np.random.SeedSequence(spec.seed, spawn_key=(c.index, _IMAGING)))
    body = anatomy(rng, heart_failure=c.syndrome == "heart_failure")
    found = []
    for number, hour in enumerate(_schedule(c, rng)):
        at = c.origin + timedelta(seconds=round(hour * 3600))
        state = c.state_at(at)
        view = "AP" if rng.random() < 0.25 + 0.7 * state.severity else "PA"
        modality = "CR" if view == "AP" and rng.random() < 0.6 else "DX"
        seed = np.random.SeedSequence(spec.seed, spawn_key=(c.index, _IMAGING, number))
        found.append(Study(c.patient_id, number, at, state, body, view, modality, seed))
    return found


def studies(spec: CohortSpec) -> list[Study]:
    """Every film of the cohort in `acquired_at` order (ties by patient)."""
    found = [s for c in cohort.courses(spec) for s in patient_studies(spec, c)]
    return sorted(found, key=lambda s: (s.acquired_at, s.patient_id))


def _dicom(study: Study, pixels: np.ndarray) -> Dataset:
    """A DX (for presentation) or CR image object with the tags a PACS and pydicom need."""
    sop_class = (
        ComputedRadiographyImageStorage
        if study.modality == "CR"
        else DigitalXRayImageStorageForPresentation
    )
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop_class
    meta.MediaStorageSOPInstanceUID = study.sop_uid
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    t = study.acquired_at.astimezone(UTC)
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = study.sop_uid
    ds.StudyInstanceUID = study.study_uid
    ds.SeriesInstanceUID = study.series_uid
    ds.StudyDate = ds.SeriesDate = ds.ContentDate = f"{t:%Y%m%d}"
    ds.StudyTime = ds.SeriesTime = ds.ContentTime = f"{t:%H%M%S}"
    ds.AcquisitionDateTime = f"{t:%Y%m%d%H%M%S}+0000"
    ds.TimezoneOffsetFromUTC = "+0000"
    ds.StudyID = str(study.number + 1)
    ds.AccessionNumber = ""
    ds.ReferringPhysicianName = ""
    ds.PatientName = ""
    ds.PatientID = study.patient_id
    ds.PatientBirthDate = ""
    ds.PatientSex = ""
    ds.Modality = study.modality
    ds.Manufacturer = "Vigil simulation"
    ds.SeriesNumber = 1
    ds.InstanceNumber = 1
    ds.BodyPartExamined = "CHEST"
    ds.ViewPosition = study.view
    ds.PatientOrientation = ["L", "F"]
    ds.ImageType = ["ORIGINAL", "PRIMARY"]
    if study.modality == "DX":
        ds.PresentationIntentType = "FOR PRESENTATION"
    ds.ImagerPixelSpacing = ds.PixelSpacing = [FIELD_MM / SIZE, FIELD_MM / SIZE]
    ds.BurnedInAnnotation = "NO"
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows, ds.Columns = pixels.shape
    ds.BitsAllocated = 16
    ds.BitsStored = BITS_STORED
    ds.HighBit = BITS_STORED - 1
    ds.PixelRepresentation = 0
    ds.WindowCenter = 2**BITS_STORED // 2
    ds.WindowWidth = 2**BITS_STORED
    ds.PixelData = np.ascontiguousarray(pixels, dtype="<u2").tobytes()
    return ds


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def write_images(spec: CohortSpec, directory: Path) -> dict[str, Any]:
    """Write every film as `images/<patient>/<study uid>.dcm` with a 16-bit PNG beside it,
    the `ImagingStudy` events a PACS would publish (`imaging.jsonl`, time ordered, the
    bytes a replay sends to `imaging-studies.v1`), what each film truly shows
    (`imaging_labels.jsonl`) and `imaging.json` (spec, counts, file hashes). Returns the
    counts."""
    directory.mkdir(parents=True, exist_ok=True)
    counts: dict[str, Any] = {
        "patients": spec.patients,
        "patients_imaged": 0,
        "studies": 0,
        "consolidation": 0,
        "effusion": 0,
        "modality": {"CR": 0, "DX": 0},
        "view": {"AP": 0, "PA": 0},
    }
    imaged: set[str] = set()
    with (
        (directory / STUDIES_FILE).open("wb") as events,
        (directory / LABELS_FILE).open("wb") as labels,
    ):
        for study in studies(spec):
            film = study.radiograph()
            folder = directory / IMAGES_DIR / study.patient_id
            folder.mkdir(parents=True, exist_ok=True)
            path = (folder / f"{study.study_uid}.dcm").resolve()
            _dicom(study, film.pixels).save_as(path, enforce_file_format=True)
            Image.fromarray(film.pixels).save(path.with_suffix(".png"))
            acquired = isoformat(study.acquired_at)
            event = {
                "event_id": f"{study.patient_id}-img-{study.number}",
                "patient_id": study.patient_id,
                "acquired_at": acquired,
                "study_uid": study.study_uid,
                "modality": study.modality,
                "body_part": "CHEST",
                "image_uri": path.as_uri(),
            }
            label = {
                "study_uid": study.study_uid,
                "patient_id": study.patient_id,
                "acquired_at": acquired,
                "consolidation": film.consolidation,
                "effusion": film.effusion,
            }
            events.write(orjson.dumps(event) + b"\n")
            labels.write(orjson.dumps(label) + b"\n")
            imaged.add(study.patient_id)
            counts["studies"] += 1
            counts["consolidation"] += film.consolidation
            counts["effusion"] += film.effusion
            counts["modality"][study.modality] += 1
            counts["view"][film.view] += 1
    counts["patients_imaged"] = len(imaged)
    info = {
        "generator": GENERATOR,
        "spec": spec.info(),
        **counts,
        "sha256": {name: _sha256(directory / name) for name in (STUDIES_FILE, LABELS_FILE)},
    }
    (directory / INFO_FILE).write_bytes(orjson.dumps(info, option=orjson.OPT_INDENT_2))
    return counts
