"""Continuum and line indices measured on binned rest-frame spectra (numpy, any number of spectra).

``d4000n``
    Narrow 4000 A break (Balogh et al. 1999): mean F_nu in 4000-4100 A over mean F_nu in
    3850-3950 A (F_nu proportional to lambda^2 F_lambda). Dimensionless.
``hdelta_a``
    Lick H-delta_A (Worthey & Ottaviani 1997): index band 4083.500-4122.250 A, pseudo-continuum
    the straight line through the mean fluxes of 4041.600-4079.750 A and 4128.500-4161.000 A at
    their centres; ``EW = integral (1 - F / F_cont) d lambda`` over the index band. A, positive
    for absorption.
``ew_halpha``
    Emission equivalent width of H-alpha: a line flux (from a line fit) over the mean F_lambda in
    the side bands 6490-6530 A and 6600-6640 A (clear of [NII] 6548/6583). A, positive for emission.

Bins partly inside a band count by the fraction of the bin inside it, so the indices are exact
integrals of the binned (piecewise-constant) spectrum. Spectra are (n, n_pix) on bins with edges
(n_pix + 1,) in A; any flux-density unit (the indices are ratios).
"""

from __future__ import annotations

import numpy as np

D4000_BLUE = (3850.0, 3950.0)
D4000_RED = (4000.0, 4100.0)
HDELTA_A_INDEX = (4083.500, 4122.250)
HDELTA_A_BLUE = (4041.600, 4079.750)
HDELTA_A_RED = (4128.500, 4161.000)
HALPHA_SIDEBANDS = ((6490.0, 6530.0), (6600.0, 6640.0))
#: H-beta side bands: the Lick H-beta pseudo-continua (Worthey et al. 1994), air A.
HBETA_SIDEBANDS = ((4827.875, 4847.875), (4876.625, 4891.625))


def band_weights(edges: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """Length (A) of each bin inside ``[lo, hi]``; shape (n_pix,)."""
    edges = np.asarray(edges, dtype=float)
    return np.clip(np.minimum(edges[1:], hi) - np.maximum(edges[:-1], lo), 0.0, None)


def band_mean(flux: np.ndarray, edges: np.ndarray, lo: float, hi: float, fnu: bool = False) -> np.ndarray:
    """Mean flux density over ``[lo, hi]`` A of each spectrum (n,); ``fnu``: of lambda^2 F_lambda."""
    w = band_weights(edges, lo, hi)
    if fnu:
        centres = 0.5 * (np.asarray(edges[1:]) + np.asarray(edges[:-1]))
        w = w * centres**2
    return np.asarray(flux, dtype=float) @ w / band_weights(edges, lo, hi).sum()


def d4000n(flux: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Narrow 4000 A break (n,); NaN where the blue band mean is not positive."""
    blue = band_mean(flux, edges, *D4000_BLUE, fnu=True)
    red = band_mean(flux, edges, *D4000_RED, fnu=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(blue > 0, red / blue, np.nan)


def hdelta_a(flux: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Lick H-delta_A equivalent width (n,) in A; NaN where the pseudo-continuum is not positive."""
    flux = np.asarray(flux, dtype=float)
    edges = np.asarray(edges, dtype=float)
    centres = 0.5 * (edges[1:] + edges[:-1])
    xb, xr = np.mean(HDELTA_A_BLUE), np.mean(HDELTA_A_RED)
    fb, fr = band_mean(flux, edges, *HDELTA_A_BLUE), band_mean(flux, edges, *HDELTA_A_RED)
    w = band_weights(edges, *HDELTA_A_INDEX)
    inside = w > 0
    cont = fb[:, None] + (fr - fb)[:, None] * (centres[inside] - xb) / (xr - xb)  # (n, n_inside)
    with np.errstate(divide="ignore", invalid="ignore"):
        ew = np.sum((1.0 - flux[:, inside] / cont) * w[inside], axis=1)
        return np.where(np.all(cont > 0, axis=1), ew, np.nan)


def halpha_continuum(flux: np.ndarray, edges: np.ndarray, sidebands: tuple = HALPHA_SIDEBANDS) -> np.ndarray:
    """Mean F_lambda (n,) in the side bands ``sidebands`` (default :data:`HALPHA_SIDEBANDS`)."""
    w = sum(band_weights(edges, lo, hi) for lo, hi in sidebands)
    return np.asarray(flux, dtype=float) @ w / w.sum()


def ew_halpha(
    line_flux: np.ndarray, flux: np.ndarray, edges: np.ndarray, sidebands: tuple = HALPHA_SIDEBANDS
) -> np.ndarray:
    """H-alpha emission EW (n,) in A: ``line_flux`` (n,; flux-density units x A, same units as
    ``flux``) over :func:`halpha_continuum`; NaN where the continuum is not positive. With
    ``sidebands=HBETA_SIDEBANDS``, the same for H-beta."""
    cont = halpha_continuum(flux, edges, sidebands)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(cont > 0, np.asarray(line_flux, dtype=float) / cont, np.nan)
