"""The amplitude of the posterior family: the coarse grid it is marginalised on and the refined
points that replace that grid where the data pin the amplitude down.

The clean spectrum is ``s x0`` with ``x0`` of unit norm; the prior on ``u = log s`` is uniform over
``n_scale`` cells of width ``h`` centred on an estimate of the amplitude from the input
(:func:`scale_grid`: its noise-debiased norm, or at low S/N an inverse-variance weighted estimate;
with the default 5 points ``h`` is one sd of the estimate and the range +-2.5 sd). Each grid point
stands for its cell: the evidence integral over ``u`` is ``sum L(u_j) h``.

Where the evidence of a component is much narrower in ``u`` than a cell (the shape of the
spectrum fixes its amplitude far better than its norm does; at S/N 0.5 per pixel the posterior
sd of ``u`` is typically a quarter of ``h``), the coarse sum collapses onto one point: the
amplitude's uncertainty is lost and its error (up to ``h / 2``) enters the mean.
:func:`refine` fits a parabola to the log evidence at the three coarse points around the best one
(vertex ``u*``, Laplace sd ``sigma``) and puts :data:`N_FINE` points at ``u* + FINE_STEP sigma
(-2, ..., 2)``, each of width ``FINE_STEP sigma``: a midpoint sum whose variance is 0.98 of the
Gaussian's and whose mean is exact for a Gaussian. Points outside the prior's range are dropped;
components with ``sigma >= h`` keep the coarse grid.
"""

from __future__ import annotations

import numpy as np

#: refined amplitude points per component, and their spacing in units of the Laplace sd of log s
N_FINE = 5
FINE_STEP = 1.2
#: components whose best coarse log evidence is more than this below the spectrum's best keep the
#: coarse grid (their weight, < 5e-5 of the best's, is not worth the refined points' cost)
MARGIN = 10.0


def _norm_estimate(y: np.ndarray, ivar: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``s^2`` and its sd (n,) from the noise-debiased norm ``|y|^2 - sum(1/ivar)`` (shape-free)."""
    good = ivar > 0
    var = np.where(good, 1.0 / np.where(good, ivar, 1.0), 0.0)
    y2 = np.sum(np.where(good, y, 0.0) ** 2, axis=1)
    frac = good.mean(axis=1).clip(1e-3)
    sd2 = np.sqrt(2 * np.sum(var**2, axis=1) + 4 * np.sum(np.where(good, y, 0.0) ** 2 * var, axis=1)) / frac
    return (y2 - var.sum(axis=1)) / frac, sd2


def _weighted_estimate(y: np.ndarray, ivar: np.ndarray, power: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``s^2`` and its sd (n,) from ``sum w (y^2 - var) / sum w power`` with the inverse-variance
    weights of ``y^2`` (``2 var^2 + 4 s^2 power var``, three iterations): ``power`` (P,) is the
    prior's mean ``x0^2`` per pixel (sums to 1), so the noisiest pixels no longer dominate."""
    good = ivar > 0
    var = np.where(good, 1.0 / np.where(good, ivar, 1.0), 0.0)
    dev = np.where(good, y * y - var, 0.0)
    pw = np.where(good, power[None, :], 0.0)
    s2 = np.zeros(len(y))
    for _ in range(3):
        vy = 2 * var * var + 4 * s2[:, None] * pw * var
        w = np.where(good, 1.0 / np.where(good & (vy > 0), vy, 1.0), 0.0)
        norm = np.maximum(np.sum(w * pw, axis=1), 1e-300)
        s2 = np.maximum(np.sum(w * dev, axis=1) / norm, 0.0)
    return np.sum(w * dev, axis=1) / norm, np.sqrt(np.sum(w * w * vy, axis=1)) / norm


def scale_grid(y: np.ndarray, ivar: np.ndarray, n_scale: int, power: np.ndarray | None = None) -> np.ndarray:
    """Amplitude grid (n, n_scale) equally spaced in ``log s`` over +-2 sd of an estimate of the
    amplitude (its fractional sd ``rel`` clipped to 2-50 %).

    The estimate is the noise-debiased norm (shape-free) where it is significant (``s^2 > 3 sd``).
    Where it is not (low S/N, most of all with very uneven noise, whose noisiest pixels dominate
    ``sum(1/ivar)``), its fallback (``s^2`` = its sd) is biased high, by up to a factor 5 at S/N
    0.3; given the prior's mean power per pixel ``power`` (P,), those spectra use the
    inverse-variance weighted estimate (:func:`_weighted_estimate`) instead, with 10 % added in
    quadrature to ``rel`` for the spectrum's shape differing from the prior's mean.
    """
    s2, sd2 = _norm_estimate(y, ivar)
    weak = s2 < 3.0 * sd2
    if power is not None and weak.any():
        s2w, sd2w = _weighted_estimate(y[weak], ivar[weak], power)
        s2, sd2 = s2.copy(), sd2.copy()
        s2[weak], sd2[weak] = s2w, sd2w
    s2 = np.maximum(s2, np.maximum(sd2, 1e-4))
    rel = 0.5 * sd2 / s2  # fractional sd of s
    if power is not None:
        rel = np.where(weak, np.hypot(rel, 0.1), rel)
    rel = np.clip(rel, 0.02, 0.5)
    off = np.linspace(-2.0, 2.0, n_scale) if n_scale > 1 else np.zeros(1)
    return np.sqrt(s2)[:, None] * np.exp(off[None, :] * rel[:, None])


def cell_width(grid: np.ndarray) -> np.ndarray:
    """Width ``h`` (n,) in ``log s`` of the coarse grid's cells (1 for a single point: no marginalisation)."""
    if grid.shape[1] < 2:
        return np.ones(len(grid))
    return np.log(grid[:, 1] / grid[:, 0])


def refine(logw: np.ndarray, grid: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Refined amplitude points from the coarse log evidence of m (spectrum, component) pairs.

    Parameters
    ----------
    logw : (m, S) log evidence of each pair at its spectrum's coarse points (S >= 3, all finite).
    grid : (m, S) the coarse amplitudes.

    Returns
    -------
    s : (m, N_FINE) refined amplitudes (NaN: outside the prior's range, not to be evaluated).
    log_width : (m,) log of each refined point's width in ``log s`` (NaN: pair not refined).
    refined : (m,) bool, ``sigma < h``: the pair's coarse terms are replaced by the refined ones.
    """
    m, S = logw.shape
    u = np.log(grid)
    h = cell_width(grid)
    j = np.clip(np.argmax(logw, axis=1), 1, S - 2)
    rows = np.arange(m)
    lm, l0, lp = logw[rows, j - 1], logw[rows, j], logw[rows, j + 1]
    d2 = lp - 2.0 * l0 + lm  # second difference: -h^2 / sigma^2 for a Gaussian in u
    refined = d2 < -1.0  # sigma < h
    with np.errstate(divide="ignore", invalid="ignore"):
        vertex = np.where(refined, np.clip(-0.5 * (lp - lm) / d2, -1.5, 1.5), 0.0)
        sigma = np.where(refined, h / np.sqrt(-d2), np.nan)
    lo, hi = u[:, 0] - 0.5 * h, u[:, -1] + 0.5 * h  # the prior's range
    centre = np.clip(u[rows, j] + vertex * h, lo, hi)
    pts = _points(centre, np.where(refined, sigma, h), lo, hi)
    return np.where(refined[:, None], pts, np.nan), np.log(FINE_STEP * sigma), refined


def _points(centre, sigma, lo, hi):
    """N_FINE points (m, N_FINE) at ``centre + FINE_STEP sigma (-2..2)`` in log s, NaN outside [lo, hi]."""
    fine = centre[:, None] + (FINE_STEP * sigma)[:, None] * (np.arange(N_FINE) - N_FINE // 2)[None, :]
    return np.where((fine >= lo[:, None]) & (fine <= hi[:, None]), np.exp(fine), np.nan)
