"""The amplitude of the posterior family: the coarse grid it is marginalised on and the refined
points that replace that grid where the data pin the amplitude down.

The clean spectrum is ``s x0`` with ``x0`` of unit norm; the prior on ``u = log s`` is uniform over
``n_scale`` cells of width ``h`` centred on the noise-debiased norm of the input
(:func:`scale_grid`; with the default 5 points ``h`` is one sd of that estimate and the range +-2.5 sd). Each
grid point stands for its cell: the evidence integral over ``u`` is ``sum L(u_j) h``.

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


def scale_grid(y: np.ndarray, ivar: np.ndarray, n_scale: int) -> np.ndarray:
    """Amplitude grid (n, n_scale) around the noise-debiased norm of ``y`` (unit-norm prior),
    equally spaced in ``log s`` over +-2 sd of that estimate (its fractional sd clipped to 2-50 %)."""
    good = ivar > 0
    var = np.where(good, 1.0 / np.where(good, ivar, 1.0), 0.0)
    y2 = np.sum(np.where(good, y, 0.0) ** 2, axis=1)
    frac = good.mean(axis=1).clip(1e-3)
    s2 = (y2 - var.sum(axis=1)) / frac
    sd2 = np.sqrt(2 * np.sum(var**2, axis=1) + 4 * np.sum(np.where(good, y, 0.0) ** 2 * var, axis=1)) / frac
    s2 = np.maximum(s2, np.maximum(sd2, 1e-4))
    rel = np.clip(0.5 * sd2 / s2, 0.02, 0.5)  # fractional sd of s
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
    step = FINE_STEP * sigma
    fine = centre[:, None] + step[:, None] * (np.arange(N_FINE) - N_FINE // 2)[None, :]
    inside = (fine >= lo[:, None]) & (fine <= hi[:, None]) & refined[:, None]
    return np.where(inside, np.exp(fine), np.nan), np.log(step), refined
