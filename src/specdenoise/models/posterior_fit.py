"""Fitting the posterior family's prior (streamed, memory bounded), its calibration, and draws.

Prior: a mixture of factor analysers over unit-norm clean spectra. The partition is k-means on
the first ``n_kmeans`` spectra (in a 32-component PCA space); every spectrum of the stream is
then assigned to its nearest centre and each component's count, sum and scatter matrix are
accumulated (K x P x P float64: 87 MB for K = 16, P = 825), so memory does not grow with the
number of spectra. Each component keeps its top ``q`` eigenvectors as the loading
``W = V sqrt(lambda - d_floor)`` and the diagonal of the rest of its covariance as ``D``.

Calibration: on a validation split of fresh clean spectra observed with mixed noise shapes and
log-uniform S/N, the raw posterior's pixel z-scores (truth - mean) / sd are binned by each
pixel's own S/N; the factor that brings each (bin, pixel) cell's 68.27 % quantile of |z| to 1 is
stored (interpolated in log S/N at inference). The OOD chi^2 threshold is the 99.5 % quantile of the validation spectra.
"""

from __future__ import annotations

import time
import warnings
from typing import Any

import numpy as np

PCA_DIM = 32
CALIB_EDGES = np.arange(-1.5, 2.76, 0.25)  # log10 pixel S/N (open-ended at both ends)


class PriorAccumulator:
    """Streaming per-component sums for a hard-assigned Gaussian mixture."""

    def __init__(self, centres: np.ndarray, proj: np.ndarray, mean0: np.ndarray) -> None:
        self.centres, self.proj, self.mean0 = centres, proj, mean0
        k, p = len(centres), len(mean0)
        self.count = np.zeros(k)
        self.sum = np.zeros((k, p))
        self.scatter = np.zeros((k, p, p))

    def assign(self, x: np.ndarray) -> np.ndarray:
        """Nearest k-means centre (n,) in the PCA space."""
        c = (x - self.mean0) @ self.proj
        return np.argmin(((c[:, None, :] - self.centres[None]) ** 2).sum(-1), axis=1)

    def add(self, x: np.ndarray) -> None:
        lab = self.assign(x)
        for k in np.unique(lab):
            xs = x[lab == k] - self.mean0
            self.count[k] += len(xs)
            self.sum[k] += xs.sum(0)
            self.scatter[k] += xs.T @ xs

    def finish(self, q: int) -> dict[str, np.ndarray]:
        """Mixture of factor analysers: ``mu`` (K, P), ``w`` (K, P, q), ``d`` (K, P), ``log_pi`` (K,)."""
        keep = self.count > max(2 * q, 5)
        mus, ws, ds = [], [], []
        for k in np.flatnonzero(keep):
            m = self.sum[k] / self.count[k]
            cov = self.scatter[k] / self.count[k] - np.outer(m, m)
            evals, evecs = np.linalg.eigh(cov)
            evals, evecs = evals[::-1], evecs[:, ::-1]
            tail = max(float(np.mean(np.clip(evals[q:], 0, None))), 1e-12)
            w = evecs[:, :q] * np.sqrt(np.clip(evals[:q] - tail, 0, None))
            d = np.diag(cov) - np.sum(w**2, axis=1)
            ds.append(np.clip(d, 0.1 * tail, None))
            mus.append(m + self.mean0)
            ws.append(w)
        pi = self.count[keep] / self.count[keep].sum()
        return {"mu": np.array(mus), "w": np.array(ws), "d": np.array(ds), "log_pi": np.log(pi)}


def fit_prior(stream, n_components: int, q: int, n_kmeans: int, seed: int) -> tuple[dict[str, np.ndarray], dict]:
    """Fit the prior from an iterator of (m, P) unit-norm clean chunks; returns arrays and info."""
    from sklearn.cluster import KMeans

    t0 = time.process_time()
    head, total = [], 0
    acc = None
    for x, _ in stream:
        total += len(x)
        if acc is None:
            head.append(x)
            if sum(len(h) for h in head) < n_kmeans:
                continue
            first = np.concatenate(head)
            mean0 = first.mean(0)
            _, _, vt = np.linalg.svd(first[:: max(1, len(first) // 5000)] - mean0, full_matrices=False)
            proj = vt[:PCA_DIM].T
            km = KMeans(n_clusters=n_components, n_init=3, random_state=seed).fit((first - mean0) @ proj)
            acc = PriorAccumulator(km.cluster_centers_, proj, mean0)
            acc.add(first)
            head = []
        else:
            acc.add(x)
    if acc is None:  # the stream was shorter than n_kmeans
        return fit_prior([(np.concatenate(head), None)], n_components, q, 0, seed)
    arrays = acc.finish(q)
    return arrays, {"n_prior": total, "prior_cpu_s": time.process_time() - t0, "components": len(arrays["mu"])}


def pixel_log_snr(mean: np.ndarray, ivar: np.ndarray) -> np.ndarray:
    """log10 of each pixel's S/N, |posterior mean| sqrt(ivar), (n, P); masked pixels get -3."""
    with np.errstate(divide="ignore"):
        return np.maximum(np.log10(np.abs(mean) * np.sqrt(np.clip(ivar, 0, None))), -3.0)


def calibrate(model: Any, obs: dict[str, np.ndarray], z: np.ndarray) -> dict[str, np.ndarray]:
    """Per-pixel spread scale as a function of the pixel's own S/N, S/N and redshift ranges and the
    OOD threshold, from validation ``obs``.

    ``calib_scale`` (n_bins, P) is the 68.27 % quantile of |truth - mean| / sd over the validation
    pixels whose own S/N (:func:`pixel_log_snr`) falls in each bin (centres ``calib_log_snr``):
    binning by the pixel's S/N rather than the spectrum's makes the factor follow the noise shape
    (sky lines, DESI arm ends, masks). A (bin, pixel) cell with fewer than 30 entries takes the
    bin's factor over all pixels; bins with fewer than 300 entries are dropped."""
    mean, sd, chi2 = model.predict(obs["flux"], obs["ivar"], calibrated=False, scale="input")
    zs = np.abs(obs["truth"] - mean) / np.maximum(sd, 1e-12)
    ls = pixel_log_snr(mean, obs["ivar"])
    centres, scales = [], []
    edges = CALIB_EDGES.copy()
    edges[0], edges[-1] = -np.inf, np.inf
    for lo, hi in zip(edges[:-1], edges[1:], strict=True):
        sel = (ls >= lo) & (ls < hi)
        if sel.sum() < 300:
            continue
        centres.append(float(np.median(ls[sel])))
        glob = float(np.quantile(zs[sel], 0.6827))
        with warnings.catch_warnings():  # all-NaN columns: pixels never in this bin
            warnings.simplefilter("ignore", RuntimeWarning)
            per = np.nanquantile(np.where(sel, zs, np.nan), 0.6827, axis=0)
        scales.append(np.where(sel.sum(axis=0) >= 30, per, glob))
    if not centres:
        centres, scales = [0.0], [np.ones(zs.shape[1])]
    return {
        "calib_log_snr": np.array(centres),
        "calib_scale": np.array(scales),
        "ood_chi2_max": np.array(float(np.quantile(chi2, 0.995))),
        "snr_range": np.array([0.2, 500.0]),
        "z_range": np.array([float(np.min(z)), float(np.max(z))]),
    }


def truncate_rank(arrays: dict[str, np.ndarray], q: int) -> dict[str, np.ndarray]:
    """The prior with each loading cut to its first ``q`` columns; the dropped columns' variance
    moves into the diagonal (exact on the diagonal, drops their correlations)."""
    w = arrays["w"]
    return {**arrays, "w": w[:, :, :q].copy(), "d": arrays["d"] + np.sum(w[:, :, q:] ** 2, axis=2)}
