"""Fitting the posterior family's prior (streamed, memory bounded).

Prior: a mixture of factor analysers over unit-norm clean spectra. The partition is k-means on
the first ``n_kmeans`` spectra (in a 32-component PCA space), run separately within each
H-alpha strength level (:func:`halpha_level`: edges in log10 of the spectrum's H-alpha excess)
with components allocated by the level's share (at least ``level_min`` each); every spectrum of
the stream is then assigned to the nearest centre of its own level and each component's count,
sum and scatter matrix are accumulated (K x P x P float64: 87 MB for K = 16, P = 825), so memory
does not grow with the number of spectra. Each component keeps its top ``q`` eigenvectors as the
loading ``W = V sqrt(lambda - d_floor)`` and the diagonal of the rest of its covariance as ``D``;
components below the strongest H-alpha level add ``line_rank`` line loadings (:func:`line_loadings`).

Why the levels: line strengths are close to log-normal within a galaxy class (a class's own mean
+- sd holds 90-95 % of its absorption, quiescent and AGN galaxies' H-alpha), and a k-means
partition in the PCA space follows the continuum, which carries the variance. A Gaussian
component then spans a decade of H-alpha with an sd about its mean (a fifth of its draws
negative), and at low S/N the posterior intervals of weak-line galaxies come out 3-5 times too
wide, their H-alpha pulled 2-4 times up towards the population (README, posterior section).

Why the line loadings: in a weak-line component the top ``q`` eigenvectors follow the continuum,
so the variation of its lines fell into ``D``, independent per pixel: a line's flux then varies
as the sum of its pixels' independent parts, too little, and at S/N 30 / 100 the weak-line
classes' H-alpha intervals held 0.63 / 0.55 (absorption) and 0.69 / 0.60 (quiescent; ``bench
posterior``). Their line loadings carry 13-55 % of the continuum-subtracted H-alpha variance
and 26-83 % of [OIII]'s in the components of the four lower levels, 0-3 % in the strongest
level, where the top ``q`` already follow the lines; there they only let the components with
the largest ``D`` fit real spectra's line shapes and win them, copying noise (NGC3073: chi^2 vs
data 0.65 instead of 0.82), so that level gets none.

Calibration: :mod:`.posterior_calibrate`.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np
from scipy.ndimage import median_filter

from specdenoise.models.posterior_prior import MISMATCH_LINES

PCA_DIM = 32
#: rest wavelength (A) of the line whose strength levels split the prior's partition (H-alpha), the
#: half-width (bins) summed around it, and the running median's width (bins) its excess is over
LEVEL_LINE, LEVEL_HALF, MEDIAN_WIDTH = 6562.8, 3, 15


def line_excess(x: np.ndarray) -> np.ndarray:
    """Positive excess (n, P) of spectra ``x`` (n, P) over their running median of
    :data:`MEDIAN_WIDTH` bins: the emission lines."""
    return np.clip(x - median_filter(x, size=(1, MEDIAN_WIDTH), mode="nearest"), 0.0, None)


def halpha_level(x: np.ndarray, wave: np.ndarray, edges) -> np.ndarray:
    """Strength level (n,) of unit-norm clean spectra ``x`` (n, P) on rest wavelengths ``wave`` (P,):
    the index of log10 of the H-alpha excess (:func:`line_excess` summed over the bins within
    :data:`LEVEL_HALF` of :data:`LEVEL_LINE`; floored at 1e-6) among the increasing ``edges``."""
    i = int(np.argmin(np.abs(np.asarray(wave) - LEVEL_LINE)))
    pad = LEVEL_HALF + MEDIAN_WIDTH // 2  # the window's median equals the whole spectrum's in the core
    lo, hi = max(i - pad, 0), min(i + pad + 1, x.shape[1])
    ex = line_excess(x[:, lo:hi])
    core = slice(max(i - lo - LEVEL_HALF, 0), i - lo + LEVEL_HALF + 1)
    return np.searchsorted(np.asarray(edges, float), np.log10(np.maximum(ex[:, core].sum(axis=1), 1e-6)))


class PriorAccumulator:
    """Streaming per-component sums for a hard-assigned Gaussian mixture; with ``level`` (a function
    of the spectra (n, P) -> level (n,)) and ``owner`` (K,) the level of each centre, a spectrum is
    assigned among its own level's centres (all centres where its level has none)."""

    def __init__(
        self,
        centres: np.ndarray,
        proj: np.ndarray,
        mean0: np.ndarray,
        owner: np.ndarray | None = None,
        level: Callable[[np.ndarray], np.ndarray] | None = None,
    ) -> None:
        self.centres, self.proj, self.mean0 = centres, proj, mean0
        self.owner, self.level = owner, level
        k, p = len(centres), len(mean0)
        self.count = np.zeros(k)
        self.sum = np.zeros((k, p))
        self.scatter = np.zeros((k, p, p))

    def assign(self, x: np.ndarray, lev: np.ndarray | None = None) -> np.ndarray:
        """Nearest k-means centre (n,) in the PCA space (of the spectrum's own level; ``lev`` (n,):
        the levels of ``x`` where already known)."""
        c = (x - self.mean0) @ self.proj
        dist = ((c[:, None, :] - self.centres[None]) ** 2).sum(-1)
        if self.level is not None and self.owner is not None:
            lev = self.level(x) if lev is None else lev
            mine = self.owner[None, :] == lev[:, None]
            dist = np.where(mine | ~mine.any(axis=1, keepdims=True), dist, np.inf)
        return np.argmin(dist, axis=1)

    def add(self, x: np.ndarray, lev: np.ndarray | None = None) -> None:
        lab = self.assign(x, lev)
        for k in np.unique(lab):
            xs = x[lab == k] - self.mean0
            self.count[k] += len(xs)
            self.sum[k] += xs.sum(0)
            self.scatter[k] += xs.T @ xs

    def finish(self, q: int, line_idx: np.ndarray | None = None, line_rank: int = 0) -> dict[str, np.ndarray]:
        """Mixture of factor analysers: ``mu`` (K, P), ``w`` (K, P, q + line_rank), ``d`` (K, P), ``log_pi`` (K,).

        With ``line_idx`` (pixel indices of the emission-line windows, :func:`line_windows`) each
        component below the strongest H-alpha level (every component without levels) gets
        ``line_rank`` more columns (the rest get zeros): :func:`line_loadings` of what its top ``q``
        leave, so that a line's pixels vary together instead of independently in ``D``."""
        keep = self.count > max(2 * q, 5)
        top = self.owner.max() if self.owner is not None else None
        mus, ws, ds = [], [], []
        for k in np.flatnonzero(keep):
            m = self.sum[k] / self.count[k]
            cov = self.scatter[k] / self.count[k] - np.outer(m, m)
            evals, evecs = np.linalg.eigh(cov)
            evals, evecs = evals[::-1], evecs[:, ::-1]
            tail = max(float(np.mean(np.clip(evals[q:], 0, None))), 1e-12)
            w = evecs[:, :q] * np.sqrt(np.clip(evals[:q] - tail, 0, None))
            if line_rank and line_idx is not None:
                lines = top is None or self.owner[k] < top
                wl = line_loadings(cov - w @ w.T, line_idx, line_rank) if lines else np.zeros((len(m), line_rank))
                w = np.concatenate([w, wl], axis=1)
            d = np.diag(cov) - np.sum(w**2, axis=1)
            ds.append(np.clip(d, 0.1 * tail, None))
            mus.append(m + self.mean0)
            ws.append(w)
        pi = self.count[keep] / self.count[keep].sum()
        return {"mu": np.array(mus), "w": np.array(ws), "d": np.array(ds), "log_pi": np.log(pi)}


def line_windows(wave: np.ndarray, half: int, lines=MISMATCH_LINES) -> np.ndarray:
    """Sorted pixel indices of the bins within ``half`` of the bin nearest each of ``lines`` (rest A;
    default the emission lines of :data:`.posterior_prior.MISMATCH_LINES`) on the rest grid ``wave``
    (P,); lines off the grid are skipped."""
    wave = np.asarray(wave, float)
    near = [int(np.argmin(np.abs(wave - line))) for line in lines if wave[0] <= line <= wave[-1]]
    idx = [np.arange(i - half, i + half + 1) for i in near]
    return np.unique(np.clip(np.concatenate(idx), 0, len(wave) - 1)) if idx else np.zeros(0, int)


def line_loadings(resid: np.ndarray, idx: np.ndarray, rank: int) -> np.ndarray:
    """``rank`` loading columns (P, rank), zero outside the pixels ``idx``: the top eigenvectors of the
    residual covariance ``resid`` (P, P) restricted to ``idx``, scaled by the square root of their
    eigenvalue less the mean of the rest (as the top-``q`` loadings are)."""
    evals, evecs = np.linalg.eigh(resid[np.ix_(idx, idx)])
    evals, evecs = evals[::-1], evecs[:, ::-1]
    r = min(rank, len(idx))
    tail = float(np.mean(np.clip(evals[r:], 0, None))) if len(idx) > r else 0.0
    out = np.zeros((len(resid), rank))
    out[idx, :r] = evecs[:, :r] * np.sqrt(np.clip(evals[:r] - tail, 0, None))
    return out


def _partition(first, proj, mean0, n_components: int, seed: int, levels, level_min: int):
    """k-means centres (K', PCA_DIM) of the spectra ``first``, the level of each centre and of each
    spectrum (both ``None``: no levels, one k-means): within each populated level,
    ``max(level_min, round(K share))`` centres (never more than its spectra), adjusted to
    ``n_components`` in all by the level's share."""
    from sklearn.cluster import KMeans

    c = (first - mean0) @ proj
    if levels is None:
        return KMeans(n_clusters=n_components, n_init=3, random_state=seed).fit(c).cluster_centers_, None, None
    lev = levels(first)
    ids, counts = np.unique(lev, return_counts=True)
    share = counts / counts.sum()
    alloc = np.minimum(np.maximum(level_min, np.round(n_components * share)), counts).astype(int)
    floor = np.minimum(level_min, counts)
    while alloc.sum() > n_components and (alloc > floor).any():
        alloc[np.argmax(np.where(alloc > floor, alloc / share, -np.inf))] -= 1
    while alloc.sum() < n_components and (alloc < counts).any():
        alloc[np.argmax(np.where(alloc < counts, share / alloc, -np.inf))] += 1
    cents = [
        KMeans(n_clusters=int(a), n_init=3, random_state=seed).fit(c[lev == i]).cluster_centers_
        for i, a in zip(ids, alloc, strict=True)
    ]
    return np.concatenate(cents), np.repeat(ids, alloc), lev


def fit_prior(
    stream,
    n_components: int,
    q: int,
    n_kmeans: int,
    seed: int,
    levels=None,
    level_min: int = 2,
    line_idx: np.ndarray | None = None,
    line_rank: int = 0,
) -> tuple[dict[str, np.ndarray], dict]:
    """Fit the prior from an iterator of (m, P) unit-norm clean chunks; returns arrays and info.

    ``levels``: a function of the spectra (n, P) -> strength level (n,) (e.g. :func:`halpha_level`
    with the grid and edges bound) that splits the partition (module docstring); ``None``: one
    k-means over all spectra. ``line_idx``, ``line_rank``: the line loadings
    (:meth:`PriorAccumulator.finish`)."""
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
            centres, owner, lev = _partition(first, proj, mean0, n_components, seed, levels, level_min)
            acc = PriorAccumulator(centres, proj, mean0, owner, levels)
            acc.add(first, lev)
            head = []
        else:
            acc.add(x)
    if acc is None:  # the stream was shorter than n_kmeans
        head = [(np.concatenate(head), None)]
        return fit_prior(head, n_components, q, 0, seed, levels, level_min, line_idx, line_rank)
    arrays = acc.finish(q, line_idx, line_rank)
    return arrays, {"n_prior": total, "prior_cpu_s": time.process_time() - t0, "components": len(arrays["mu"])}
