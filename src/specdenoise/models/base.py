"""The interface every de-noising model family implements."""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from specdenoise.errors import ConfigError, DataError

FAMILIES: dict[str, type["DenoisingModel"]] = {}


def register(cls: type["DenoisingModel"]) -> type["DenoisingModel"]:
    """Class decorator: make a family available by its ``family`` name."""
    FAMILIES[cls.family] = cls
    return cls


def get_family(name: str) -> type["DenoisingModel"]:
    try:
        return FAMILIES[name]
    except KeyError:
        raise ConfigError(f"train.families: unknown model family '{name}' (known: {', '.join(sorted(FAMILIES))})") from None


@dataclass
class TrainingData:
    """Arrays a family trains on, all (n, n_pix) float32 in normalised units.

    ``x`` are the noise-added inputs, ``y`` the targets (the SDSS-like observed spectra, the
    paper's "original"), ``w`` the eq.-3 weights of the targets; ``*_val`` the validation
    split. ``noise`` draws a fresh noise-added version of ``y`` (for ``train.fresh_noise``),
    ``noise_sigma`` is the per-pixel sigma of the added noise (for the Wiener filter).
    """

    x: np.ndarray
    y: np.ndarray
    w: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    w_val: np.ndarray
    wave: np.ndarray
    noise_sigma: np.ndarray
    noise: Any = None
    meta: dict[str, Any] = field(default_factory=dict)


class DenoisingModel(ABC):
    """A de-noiser: ``fit`` on :class:`TrainingData`, ``denoise`` (n, n_pix) -> (n, n_pix).

    ``save`` writes a directory with ``family.json`` plus the family's own files (NumPy
    ``.npz`` or Keras ``.keras``; never pickles); :func:`load_model` reads it back.
    """

    family: ClassVar[str]
    #: True when ``latent_dim`` is meaningful (a bottleneck or a rank)
    has_latent: ClassVar[bool] = True

    def __init__(self, latent_dim: int, hyper: dict[str, Any] | None = None) -> None:
        self.latent_dim = int(latent_dim)
        self.hyper = dict(hyper or {})
        self.history: dict[str, list[float]] = {}

    @abstractmethod
    def fit(self, data: TrainingData, cfg: Any, seed: int, callbacks: list | None = None) -> dict[str, list[float]]:
        """Train; return the per-epoch history (empty lists for closed-form families)."""

    @abstractmethod
    def denoise(self, x: np.ndarray) -> np.ndarray:
        """De-noise spectra (n, n_pix) in normalised units; returns (n, n_pix) float32."""

    @abstractmethod
    def _save_files(self, path: Path) -> None: ...

    @classmethod
    @abstractmethod
    def _load_files(cls, path: Path, latent_dim: int, hyper: dict[str, Any]) -> "DenoisingModel": ...

    def n_parameters(self) -> int:
        return 0

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        self._save_files(path)
        meta = {"family": self.family, "latent_dim": self.latent_dim, "hyper": self.hyper, "history": self.history}
        (path / "family.json").write_text(json.dumps(meta, indent=2, sort_keys=True))
        return path


def load_model(path: str | Path) -> DenoisingModel:
    """Load a model saved by :meth:`DenoisingModel.save` (any family)."""
    path = Path(path)
    try:
        meta = json.loads((path / "family.json").read_text())
    except FileNotFoundError:
        raise DataError(f"{path}: not a saved specdenoise model (no family.json)") from None
    except json.JSONDecodeError as exc:
        raise DataError(f"{path / 'family.json'}: not valid JSON ({exc.msg})") from None
    cls = get_family(meta["family"])
    model = cls._load_files(path, int(meta["latent_dim"]), meta.get("hyper", {}))
    model.history = meta.get("history", {})
    return model
