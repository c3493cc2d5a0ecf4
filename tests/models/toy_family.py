"""A toy model family defined outside the package, to test the plug-in interface end to end.

``smooth``: box-car smoothing of the input, blended with the training mean by one least-squares
weight. Closed form (not iterative, not searchable, no posterior), logged as pyfunc, never
registered in the MLflow registry; its ``train.smooth`` section sets the box width.

Importing this module registers nothing; use :func:`registered` (a context manager) or the
``smooth_family`` pytest fixture of ``tests/models/test_plugin.py``::

    from models.toy_family import registered    # tests/ is on sys.path (rootdir of the test packages)

    with registered():
        params = parse_params({"train": {"families": ["pca", "smooth"], "smooth": {"width": 5}}})
        ...
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import Field, model_validator

from specdenoise.models.base import FAMILIES, DenoisingModel, FamilySettings, TrainingData, register, unregister

NAME = "smooth"


class SmoothSettings(FamilySettings):
    """``train.smooth``: the box-car width (pixels, odd)."""

    width: int = Field(5, ge=1, le=101, description="box-car width in pixels (odd)")

    @model_validator(mode="after")
    def _odd(self) -> SmoothSettings:
        if self.width % 2 == 0:
            raise ValueError(f"width must be odd, got {self.width}")
        return self


def box_smooth(x: np.ndarray, width: int) -> np.ndarray:
    """Box-car mean along the last axis with edge padding.

    Parameters
    ----------
    x : ndarray, shape (n, n_pix)
    width : int
        Odd window width in pixels.

    Returns
    -------
    ndarray, shape (n, n_pix), float64
    """
    half = width // 2
    padded = np.pad(np.asarray(x, dtype=np.float64), ((0, 0), (half, half)), mode="edge")
    return np.lib.stride_tricks.sliding_window_view(padded, width, axis=1).mean(axis=-1)


class SmoothDenoiser(DenoisingModel):
    """``x_hat = mean_out + alpha * (smooth(x) - mean_in)``, alpha fitted by least squares.

    ``hyper`` = ``{"width": int}`` (from ``train.smooth`` via :meth:`default_hyper`).
    """

    family = NAME
    has_latent = False
    settings_model = SmoothSettings

    def __init__(self, latent_dim: int, hyper: dict[str, Any] | None = None) -> None:
        super().__init__(latent_dim, hyper)
        self.hyper.setdefault("width", SmoothSettings().width)
        self.mean_in: np.ndarray | None = None
        self.mean_out: np.ndarray | None = None
        self.alpha: float | None = None

    def fit(
        self, data: TrainingData, cfg: Any, seed: int, callbacks: list | None = None, epochs: int | None = None
    ) -> dict[str, list[float]]:
        s = box_smooth(data.x, int(self.hyper["width"]))
        y = np.asarray(data.y, dtype=np.float64)
        self.mean_in, self.mean_out = s.mean(axis=0), y.mean(axis=0)
        a, b = s - self.mean_in, y - self.mean_out
        self.alpha = float(np.sum(a * b) / max(np.sum(a * a), 1e-300))
        return {}

    def denoise(self, x: np.ndarray) -> np.ndarray:
        s = box_smooth(x, int(self.hyper["width"]))
        return (self.mean_out + self.alpha * (s - self.mean_in)).astype(np.float32)

    def n_parameters(self) -> int:
        return int(self.mean_in.size + self.mean_out.size + 1)

    def _save_files(self, path: Path) -> None:
        np.savez(path / "smooth.npz", mean_in=self.mean_in, mean_out=self.mean_out, alpha=np.float64(self.alpha))

    @classmethod
    def _load_files(cls, path: Path, latent_dim: int, hyper: dict[str, Any]) -> SmoothDenoiser:
        m = cls(latent_dim, hyper)
        with np.load(path / "smooth.npz", allow_pickle=False) as z:
            m.mean_in, m.mean_out, m.alpha = z["mean_in"], z["mean_out"], float(z["alpha"])
        return m


@contextlib.contextmanager
def registered() -> Iterator[type[SmoothDenoiser]]:
    """Register the ``smooth`` family for the duration of the block, then remove it again."""
    if NAME in FAMILIES and FAMILIES[NAME] is not SmoothDenoiser:
        raise RuntimeError(f"a different family is already registered as '{NAME}'")
    register(SmoothDenoiser)
    try:
        yield SmoothDenoiser
    finally:
        unregister(NAME)


def toy_training_data(clean, noisy, sigma, n_val=100):
    """:class:`TrainingData` from toy arrays (n, n_pix): the first ``n_val`` validate, unit weights."""
    w = np.ones_like(clean)
    return TrainingData(
        noisy[n_val:],
        clean[n_val:],
        w[n_val:],
        noisy[:n_val],
        clean[:n_val],
        w[:n_val],
        np.arange(clean.shape[1]),
        np.full(clean.shape[1], sigma),
    )
