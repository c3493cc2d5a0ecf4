"""Linear de-noisers: PCA (the paper's baseline) and the Wiener filter (beyond the paper).

PCA
    Fitted with scikit-learn on the noise-added training spectra (paper section 3.1); a
    spectrum is de-noised by projecting onto the first ``latent_dim`` components and back.
Wiener filter
    The best linear de-noiser in the mean-square sense,
    ``x = mu + C (C + N)^-1 (y - mu)``, with ``C`` the covariance of the clean training
    targets and ``N`` the covariance of the added noise (diagonal, ``sigma^2``). With
    ``latent_dim`` = d < n_pix the clean covariance is truncated to its first d eigenvectors
    (a rank-d Wiener filter, comparable with the other families at each dimension).
Prior-only baseline (``mean``)
    Returns the mean of the training targets whatever the input (a rank-0 operator): what a
    de-noiser that ignores the input's lines recovers. Every metric of a real de-noiser is
    read against it (information gain, :mod:`specdenoise.evaluation.recovery`). In physical
    units its line fluxes still follow each galaxy's normalisation (its brightness).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from specdenoise.errors import DataError, ModelError
from specdenoise.io import load_npz
from specdenoise.models.base import DenoisingModel, TrainingData, register


def _save_arrays(path: Path, **arrays: np.ndarray) -> None:
    np.savez(path / "linear.npz", **arrays)


def _load_arrays(path: Path) -> dict[str, np.ndarray]:
    """The four arrays of ``linear.npz`` (no pickles), checked: finite floats of matching shapes."""
    file = path / "linear.npz"
    try:
        a = load_npz(file, required=("mean_in", "mean_out", "left", "right"))
    except DataError as exc:
        raise ModelError(str(exc)) from None
    n_pix = np.shape(a["mean_in"])[0] if np.ndim(a["mean_in"]) == 1 else -1
    shapes_ok = (
        n_pix > 0
        and np.shape(a["mean_out"]) == (n_pix,)
        and np.ndim(a["left"]) == 2
        and np.shape(a["left"])[0] == n_pix
        and np.shape(a["right"]) == (np.shape(a["left"])[1], n_pix)
    )
    if not shapes_ok or not all(np.issubdtype(v.dtype, np.floating) and np.all(np.isfinite(v)) for v in a.values()):
        raise ModelError(f"{file}: not a linear model (finite float mean_in, mean_out, left, right of matching shapes)")
    return a


class _LinearOperator(DenoisingModel):
    """x -> mean_in + (x - mean_in) @ operator, with the operator a low-rank product.

    Closed form: ``fit`` ignores ``callbacks`` and ``epochs`` and returns an empty history;
    logged to MLflow as pyfunc (the saved ``linear.npz`` directory).
    """

    iterative = False
    searchable = False
    has_posterior = False
    registry_candidate = False
    mlflow_flavour = "pyfunc"
    settings_model = None

    def __init__(self, latent_dim: int, hyper: dict[str, Any] | None = None) -> None:
        super().__init__(latent_dim, hyper)
        self.mean_in: np.ndarray | None = None
        self.mean_out: np.ndarray | None = None
        self.left: np.ndarray | None = None  # (n_pix, r)
        self.right: np.ndarray | None = None  # (r, n_pix)

    def denoise(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=np.float64)
        return (self.mean_out + ((x - self.mean_in) @ self.left) @ self.right).astype(np.float32)

    def input_size(self) -> int | None:
        return None if self.mean_in is None else int(self.mean_in.shape[0])

    def n_parameters(self) -> int:
        return int(self.left.size + self.right.size + self.mean_in.size + self.mean_out.size)

    def _save_files(self, path: Path) -> None:
        _save_arrays(path, mean_in=self.mean_in, mean_out=self.mean_out, left=self.left, right=self.right)

    @classmethod
    def _load_files(cls, path: Path, latent_dim: int, hyper: dict[str, Any]) -> _LinearOperator:
        m = cls(latent_dim, hyper)
        a = _load_arrays(path)
        m.mean_in, m.mean_out, m.left, m.right = a["mean_in"], a["mean_out"], a["left"], a["right"]
        return m


@register
class PCADenoiser(_LinearOperator):
    """PCA on the noise-added training spectra; ``latent_dim`` components (``hyper`` records the explained variance)."""

    family = "pca"

    def fit(
        self, data: TrainingData, cfg: Any, seed: int, callbacks: list | None = None, epochs: int | None = None
    ) -> dict[str, list[float]]:
        from sklearn.decomposition import PCA

        pca = PCA(n_components=self.latent_dim, svd_solver="full", random_state=seed)
        pca.fit(np.asarray(data.x, dtype=np.float64))
        self.mean_in = pca.mean_
        self.mean_out = pca.mean_
        self.left = pca.components_.T
        self.right = pca.components_
        self.hyper = {"explained_variance_ratio": float(np.sum(pca.explained_variance_ratio_))}
        return {}


@register
class WienerDenoiser(_LinearOperator):
    """Rank-``latent_dim`` Wiener filter from the clean-target and added-noise covariances."""

    family = "wiener"

    def fit(
        self, data: TrainingData, cfg: Any, seed: int, callbacks: list | None = None, epochs: int | None = None
    ) -> dict[str, list[float]]:
        y = np.asarray(data.y, dtype=np.float64)
        mu = y.mean(axis=0)
        cov = np.cov(y, rowvar=False)
        noise_var = np.broadcast_to(np.asarray(data.noise_sigma, dtype=np.float64) ** 2, mu.shape)
        mu_x = np.asarray(data.x, dtype=np.float64).mean(axis=0)
        self.left, self.right = wiener_operator(cov, noise_var, self.latent_dim)
        self.mean_in, self.mean_out = mu_x, mu
        return {}


@register
class MeanDenoiser(_LinearOperator):
    """The prior-only baseline: the training population mean (of the targets), whatever the input.

    ``latent_dim`` is not used (``has_latent`` is False; a rank-0 operator is stored so that
    saving and loading are those of the other linear families)."""

    family = "mean"
    has_latent = False

    def fit(
        self, data: TrainingData, cfg: Any, seed: int, callbacks: list | None = None, epochs: int | None = None
    ) -> dict[str, list[float]]:
        mu = np.asarray(data.y, dtype=np.float64).mean(axis=0)
        self.mean_in, self.mean_out = np.zeros_like(mu), mu
        self.left, self.right = np.zeros((mu.size, 0)), np.zeros((0, mu.size))
        return {}


def wiener_operator(cov: np.ndarray, noise_var: np.ndarray, rank: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Factors (L, R) with ``L @ R = (C + N)^-1 C`` (the row-vector form of ``C (C+N)^-1``).

    Parameters
    ----------
    cov : (n, n) clean covariance C
    noise_var : (n,) diagonal of the noise covariance N
    rank : keep the first ``rank`` eigenvectors of C (None or >= n: full rank)

    Notes
    -----
    For row vectors ``x_hat = mu + (y - mu) @ (C + N)^-1 C``, the transpose of
    ``mu + C (C + N)^-1 (y - mu)`` (C and N are symmetric).
    """
    n = cov.shape[0]
    evals, evecs = np.linalg.eigh(cov)
    order = np.argsort(evals)[::-1]
    evals, evecs = np.clip(evals[order], 0.0, None), evecs[:, order]
    if rank is not None and rank < n:
        evals, evecs = evals[:rank], evecs[:, :rank]
    c_low = (evecs * evals) @ evecs.T
    if np.allclose(noise_var, noise_var.flat[0]):
        # isotropic noise: per-component shrinkage lambda / (lambda + s^2) in C's eigenbasis
        shrink = evals / (evals + noise_var.flat[0])
        return evecs * shrink, evecs.T
    op = np.linalg.solve(c_low + np.diag(noise_var), c_low)
    return op, np.eye(n)
