"""The chest-image model at run time: reading a study's pixels, preparing them exactly as
in training, and scoring a batch on the GPU when there is one.

The artifact is a `torch.export` program (weights and graph in one file), so the worker
runs it without this module's network class and a retrained model of another shape
loads unchanged. TorchScript would do the same, but `torch.jit.script`, `save` and `load`
are deprecated in the pinned torch and warn on every call.
"""

from __future__ import annotations

import io
import os
from collections.abc import Iterator
from contextlib import contextmanager
from itertools import pairwise
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit
from urllib.request import url2pathname

import numpy as np
import pydicom
import torch
from PIL import Image, UnidentifiedImageError
from pydicom.errors import InvalidDicomError
from pydicom.pixels import apply_modality_lut, get_decoder
from pydicom.uid import UID
from torch import nn

from models.manifest import ModelManifest

IMAGE_SIZE = 128
"""Pixels per side the network sees. The findings it looks for (air-space opacity over a
lung zone, a blunted costophrenic angle, the heart's width) span tens of millimetres, so
128 pixels (about 3 mm each over a 36-43 cm film) keep them, and they cost a quarter of
the compute of 256, which is what lets the model train on a CPU in minutes and answer a
single study in milliseconds. Nodules or a pneumothorax line would need 512 or more."""
WINDOW = (1.0, 99.0)
"""Percentiles mapped to 0 and 1 before standardising: exposure, detector and bit depth
differ between films and sites, and the 1st/99th percentiles ignore the collimation
borders and markers that a min-max window would be set by."""
IMAGE_INPUTS: tuple[str, ...] = (
    f"image:1x{IMAGE_SIZE}x{IMAGE_SIZE}",
    f"window:p{WINDOW[0]:g}-p{WINDOW[1]:g}",
)
"""The model's inputs as the registry compares them: a worker refuses a model that was
trained on another size or window."""
LABELS: tuple[str, ...] = ("consolidation", "effusion")
ACUTE_FINDINGS = frozenset(LABELS)
"""Labels that count towards the imaging score; a chronic finding a later model may
report (cardiomegaly, a pacemaker) would not."""

Reason = Literal["missing", "unreadable", "too_large", "unsupported"]


class ImageError(Exception):
    """Why a study's image cannot be scored: the worker dead-letters the event with this
    reason instead of crashing or retrying an input that will never read."""

    def __init__(self, reason: Reason, message: str) -> None:
        super().__init__(message)
        self.reason: Reason = reason


def _read_bytes(path: Path, max_bytes: int) -> bytes:
    """The whole file, checked against `max_bytes` on the open handle (no window for it
    to grow between a size check and the read)."""
    try:
        with path.open("rb") as f:
            if os.fstat(f.fileno()).st_size > max_bytes:
                raise ImageError("too_large", f"{path} is over {max_bytes} bytes")
            data = f.read(max_bytes + 1)
    except FileNotFoundError:
        raise ImageError("missing", f"{path} does not exist") from None
    except OSError as exc:
        raise ImageError("unreadable", f"{path}: {exc.strerror or exc}") from None
    if len(data) > max_bytes:
        raise ImageError("too_large", f"{path} is over {max_bytes} bytes")
    return data


def _dicom(data: bytes, name: str, max_bytes: int) -> np.ndarray:
    try:
        ds = pydicom.dcmread(io.BytesIO(data))
    except InvalidDicomError as exc:
        raise ImageError("unreadable", f"{name}: not a DICOM file ({exc})") from None
    if "PixelData" not in ds:
        raise ImageError("unsupported", f"{name}: DICOM object without pixel data")
    frames = int(ds.get("NumberOfFrames", 1) or 1)
    if frames > 1:
        raise ImageError("unsupported", f"{name}: multi-frame DICOM ({frames} frames)")
    if int(ds.get("SamplesPerPixel", 1)) != 1:
        raise ImageError("unsupported", f"{name}: colour DICOM, a radiograph is grayscale")
    photometric = str(ds.get("PhotometricInterpretation", ""))
    if photometric not in ("MONOCHROME1", "MONOCHROME2"):
        raise ImageError("unsupported", f"{name}: photometric interpretation {photometric!r}")
    sample_bytes = (int(ds.get("BitsAllocated", 16)) + 7) // 8
    decoded = int(ds.get("Rows", 0)) * int(ds.get("Columns", 0)) * sample_bytes
    if decoded > max_bytes:  # compressed pixel data can decode to far more than the file
        raise ImageError("too_large", f"{name}: decodes to over {max_bytes} bytes")
    transfer = ds.file_meta.get("TransferSyntaxUID")
    if transfer is not None and transfer.is_compressed and not _can_decode(transfer):
        raise ImageError("unsupported", f"{name}: no decoder here for {transfer.name}")
    pixels = ds.pixel_array
    if pixels.ndim != 2:
        raise ImageError("unsupported", f"{name}: pixel array of shape {pixels.shape}")
    image = np.asarray(apply_modality_lut(pixels, ds), dtype=np.float32)
    if photometric == "MONOCHROME1":  # bright = less dense: flip so bright = dense
        image = image.max() + image.min() - image
    return image


def _can_decode(transfer: UID) -> bool:
    try:
        return get_decoder(transfer).is_available
    except NotImplementedError:
        return False


def _png(data: bytes, name: str, max_bytes: int) -> np.ndarray:
    try:
        with Image.open(io.BytesIO(data)) as im:
            if im.width * im.height > max_bytes:
                raise ImageError("too_large", f"{name}: {im.width}x{im.height} pixels")
            if im.mode not in ("L", "I", "F") and not im.mode.startswith("I;16"):
                im = im.convert("L")  # a screen capture of a film: its gray is the image
            return np.asarray(im, dtype=np.float32)
    except Image.DecompressionBombError as exc:
        raise ImageError("too_large", f"{name}: {exc}") from None
    except UnidentifiedImageError as exc:
        raise ImageError("unreadable", f"{name}: not a readable PNG ({exc})") from None


def _npy(data: bytes, name: str) -> np.ndarray:
    if not data.startswith(b"\x93NUMPY"):
        raise ImageError("unreadable", f"{name}: not a .npy file")
    try:
        array = np.load(io.BytesIO(data), allow_pickle=False)
    except ValueError as exc:
        if "allow_pickle" in str(exc):
            raise ImageError("unsupported", f"{name}: object array") from None
        raise
    if not isinstance(array, np.ndarray) or array.dtype.kind not in "uifb":
        raise ImageError("unsupported", f"{name}: not a numeric array")
    array = np.squeeze(array)
    if array.ndim != 2:
        raise ImageError("unsupported", f"{name}: array of shape {array.shape}, not 2-D")
    return array.astype(np.float32)


def read_image(uri: str, max_bytes: int) -> np.ndarray:
    """A study's pixels as float32 (rows, columns), bright = dense; `ImageError` with a
    reason for anything else, never another exception for a bad input."""
    parts = urlsplit(uri)
    if parts.scheme != "file":
        raise ImageError("unsupported", f"only file:// image URIs are read, got {uri[:200]!r}")
    if parts.netloc not in ("", "localhost"):
        raise ImageError("unsupported", f"file URI on another host: {parts.netloc!r}")
    path = Path(url2pathname(parts.path))
    suffix = path.suffix.lower()
    if suffix not in (".dcm", ".dicom", ".png", ".npy"):
        raise ImageError("unsupported", f"image format {suffix or '(none)'!r} is not read")
    data = _read_bytes(path, max_bytes)
    try:
        if suffix == ".png":
            image = _png(data, path.name, max_bytes)
        elif suffix == ".npy":
            image = _npy(data, path.name)
        else:
            image = _dicom(data, path.name, max_bytes)
    except ImageError:
        raise
    except Exception as exc:  # parsers of untrusted bytes fail in many ways; all mean this
        raise ImageError("unreadable", f"{path.name}: {type(exc).__name__}: {exc}") from None
    if min(image.shape) < 8:
        raise ImageError("unsupported", f"{path.name}: image of {image.shape} is too small")
    if not np.isfinite(image).all():
        raise ImageError("unreadable", f"{path.name}: pixel values that are not finite")
    return image


def window(image: np.ndarray, size: int) -> np.ndarray:
    """Square (padded, not stretched, so the heart keeps its width against the chest),
    resized with antialiasing, and mapped from the `WINDOW` percentiles to 0..1."""
    rows, cols = image.shape
    side = max(rows, cols)
    square = np.full((side, side), image.min(), dtype=np.float32)
    top, left = (side - rows) // 2, (side - cols) // 2
    square[top : top + rows, left : left + cols] = image
    resized = np.asarray(
        Image.fromarray(square).resize((size, size), Image.Resampling.BILINEAR),
        dtype=np.float32,
    )
    lo, hi = (float(v) for v in np.percentile(resized, WINDOW))
    return np.clip((resized - lo) / max(hi - lo, 1e-6), 0.0, 1.0, dtype=np.float32)


def preprocess(image: np.ndarray, size: int, mean: float, std: float) -> np.ndarray:
    """The network's input: `window`, then standardised with the training set's mean and
    standard deviation (recorded in the manifest's `preprocessing`)."""
    return ((window(image, size) - mean) / std).astype(np.float32)


class ResidualBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(
                nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.relu(self.bn1(self.conv1(x)))
        return torch.relu(self.bn2(self.conv2(y)) + self.shortcut(x))


class ChestNet(nn.Module):
    """A small ResNet: a strided stem and max-pool take 128 pixels to 32 at once (the
    findings are large), then one residual block per scale with global average pooling,
    so the answer does not depend on where in the chest the opacity lies. ~0.3 M weights:
    enough for a few hundred training films without memorising them."""

    def __init__(self, labels: int, widths: tuple[int, ...] = (16, 32, 64, 128)) -> None:
        super().__init__()
        self.stem = nn.Sequential(
            nn.Conv2d(1, widths[0], 5, 2, 2, bias=False),
            nn.BatchNorm2d(widths[0]),
            nn.ReLU(),
            nn.MaxPool2d(2),
        )
        blocks = [ResidualBlock(widths[0], widths[0], 1)]
        blocks += [ResidualBlock(a, b, 2) for a, b in pairwise(widths)]
        self.blocks = nn.Sequential(*blocks)
        self.head = nn.Linear(widths[-1], labels)

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.blocks(self.stem(x.unsqueeze(1))).mean(dim=(2, 3)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, H, W) standardised images to (N, labels) probabilities."""
        return torch.sigmoid(self.logits(x))


def export(net: ChestNet, size: int) -> bytes:
    """The network in eval mode as a `torch.export` program with a free batch size."""
    net = net.eval()
    batch = torch.export.Dim("batch", min=1)
    example = torch.zeros(2, size, size)
    program = torch.export.export(net, (example,), dynamic_shapes={"x": {0: batch}})
    buffer = io.BytesIO()
    torch.export.save(program, buffer)
    return buffer.getvalue()


def resolve_device(device: str) -> torch.device:
    """`auto` is the GPU when torch sees one; naming `cuda` without one is an error."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    resolved = torch.device(device)
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("device cuda was asked for, but torch sees no GPU")
    return resolved


class ImageModel:
    """A loaded image model: the exported program on its device and its manifest."""

    def __init__(self, manifest: ModelManifest, module: nn.Module, device: torch.device) -> None:
        self.manifest = manifest
        self.module = module
        self.device = device
        self.labels: tuple[str, ...] = tuple(manifest.labels)
        self.size = int(manifest.preprocessing["size"])
        self.mean = float(manifest.preprocessing["mean"])
        self.std = float(manifest.preprocessing["std"])
        self._acute = [i for i, label in enumerate(self.labels) if label in ACUTE_FINDINGS]

    @property
    def version(self) -> str:
        return self.manifest.version

    @classmethod
    def load(cls, folder: Path, manifest: ModelManifest, device: str = "auto") -> ImageModel:
        """The registry's loader (`functools.partial(ImageModel.load, device="cpu")` pins
        a device)."""
        program = torch.export.load(folder / manifest.artifact)
        where = resolve_device(device)
        return cls(manifest, program.module().to(where), where)

    def preprocess(self, image: np.ndarray) -> np.ndarray:
        return preprocess(image, self.size, self.mean, self.std)

    @contextmanager
    def _precision(self) -> Iterator[None]:
        """bf16 on the GPU: half the memory traffic of fp32 and the range of fp32, so
        probabilities move by ~1e-3 and nothing overflows; fp32 on the CPU, where bf16
        convolutions are slower on most processors."""
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=self.device.type == "cuda"):
            yield

    def predict(self, batch: np.ndarray) -> np.ndarray:
        """(N, size, size) preprocessed images to (N, labels) probabilities."""
        if batch.ndim != 3 or batch.shape[1:] != (self.size, self.size):
            raise ValueError(f"expected (N, {self.size}, {self.size}), got {batch.shape}")
        if len(batch) == 0:
            return np.zeros((0, len(self.labels)), dtype=np.float32)
        x = torch.from_numpy(np.ascontiguousarray(batch, dtype=np.float32)).to(self.device)
        with torch.inference_mode(), self._precision():
            probabilities = self.module(x)
        return probabilities.float().cpu().numpy()

    def score(self, probabilities: np.ndarray) -> float:
        """The imaging score for fusion: the chance of at least one acute finding, taking
        the findings as independent given the image."""
        p = np.clip(np.asarray(probabilities, dtype=np.float64)[self._acute], 0.0, 1.0)
        return float(1.0 - np.prod(1.0 - p))
