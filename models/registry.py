"""The worker's view of `VIGIL_MODEL_DIR`: the newest valid model of each kind, hot-swapped.

Layout: `<model_dir>/<name>/<version>/{manifest.json, artifact}` (see models/manifest.py).
A model is valid when its manifest parses, its artifact matches the manifest's SHA-256,
its inputs are exactly the ones the worker builds, and it loads. An invalid model is
refused with one log line and the model in use (or the NEWS2 fallback) stays.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Generic, TypeVar

from pydantic import ValidationError

from models.manifest import MANIFEST_FILE, ModelManifest, sha256

log = logging.getLogger(__name__)

M = TypeVar("M")


class Refused(Exception):
    """Why a model on disk is not used."""


def _first_difference(got: list[str], want: tuple[str, ...]) -> str:
    for i, (a, b) in enumerate(zip(got, want, strict=False)):
        if a != b:
            return f"input {i} is {a!r}, the worker builds {b!r}"
    return f"{len(got)} inputs, the worker builds {len(want)}"


def read_manifest(directory: Path, name: str, inputs: tuple[str, ...]) -> ModelManifest:
    """The manifest of one version folder, or `Refused` saying what is wrong with it."""
    try:
        manifest = ModelManifest.model_validate_json((directory / MANIFEST_FILE).read_bytes())
    except (OSError, ValidationError) as exc:
        raise Refused(f"unreadable manifest: {exc}".splitlines()[0]) from None
    if manifest.name != name:
        raise Refused(f"manifest is for model {manifest.name!r}, found under {name!r}")
    if tuple(manifest.feature_names) != inputs:
        raise Refused(
            "feature names differ from the worker's: "
            + _first_difference(manifest.feature_names, inputs)
        )
    try:
        artifact = (directory / manifest.artifact).read_bytes()
    except OSError as exc:
        raise Refused(f"artifact unreadable: {exc}") from None
    if sha256(artifact) != manifest.artifact_sha256:
        raise Refused("artifact does not match the manifest's sha256")
    return manifest


class ModelSlot(Generic[M]):
    """One kind of model (e.g. `vitals`): what is loaded, and the check for a newer one."""

    def __init__(
        self,
        model_dir: Path,
        name: str,
        inputs: tuple[str, ...],
        loader: Callable[[Path, ModelManifest], M],
        poll_s: float = 5.0,
        fallback: str = "no model",
    ) -> None:
        self.directory = model_dir / name
        self.name = name
        self.inputs = inputs
        self.loader = loader
        self.poll_s = poll_s
        self.fallback = fallback
        self.current: M | None = None
        self.current_manifest: ModelManifest | None = None
        self._refused: set[Path] = set()
        self._checked = -float("inf")

    def _candidates(self) -> list[tuple[str, Path]]:
        """Version folders, newest first by the manifest's `created` (read cheaply)."""
        found = []
        if not self.directory.is_dir():
            return []
        for folder in self.directory.iterdir():
            if folder.name.startswith(".") or folder in self._refused:
                continue
            try:
                raw = ModelManifest.model_validate_json((folder / MANIFEST_FILE).read_bytes())
                found.append((raw.created.isoformat(), folder))
            except (OSError, ValidationError):
                found.append(("", folder))  # still tried, so that the refusal is logged
        return sorted(found, key=lambda item: (item[0], item[1].name), reverse=True)

    def refresh(self, force: bool = False) -> bool:
        """Load the newest valid version if it is not the one in use; at most once per
        `poll_s` unless forced. Returns whether the model changed."""
        now = time.monotonic()
        if not force and now - self._checked < self.poll_s:
            return False
        self._checked = now
        for _, folder in self._candidates():
            if self.current_manifest is not None and folder.name == self.current_manifest.version:
                return False
            try:
                manifest = read_manifest(folder, self.name, self.inputs)
                model = self.loader(folder, manifest)
            except Refused as exc:
                self._refuse(folder, str(exc))
                continue
            except Exception as exc:  # a loader error is the model's fault, not the worker's
                self._refuse(folder, f"failed to load: {type(exc).__name__}: {exc}")
                continue
            previous = self.current_manifest.version if self.current_manifest else None
            self.current, self.current_manifest = model, manifest
            log.info("%s model %s in use (was %s)", self.name, manifest.version, previous)
            return True
        return False

    def _refuse(self, folder: Path, why: str) -> None:
        self._refused.add(folder)
        keeping = self.current_manifest.version if self.current_manifest else self.fallback
        log.error("refusing %s model %s: %s; keeping %s", self.name, folder.name, why, keeping)
