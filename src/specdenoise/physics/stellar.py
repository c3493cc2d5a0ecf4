"""Stellar populations of the universe on the BC03 + MILES grid: star-formation histories,
metallicity weights, per-basis tables and Lick Balmer indices."""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

from specdenoise.physics.grids import GRID_METALLICITIES, LINE_WAVES, load_stellar_basis

YOUNG_AGE = 1e8  # yr, span of the constant-SFR component
#: Lick Balmer indices (Worthey et al. 1994; Worthey & Ottaviani 1997): the line each measures
#: and its (blue, index, red) bands in air Angstrom.
LICK_INDICES = {
    "lick_hdelta_a": ("Hdelta", ((4041.60, 4079.75), (4083.50, 4122.25), (4128.50, 4161.00))),
    "lick_hbeta": ("Hbeta", ((4827.875, 4847.875), (4847.875, 4876.625), (4876.625, 4891.625))),
}
#: Lines measured for the MPA-JHU-like catalogue.


def sfh_mass_weights(
    age_edges: np.ndarray, age_univ: np.ndarray, tau_gyr: np.ndarray, sfr: np.ndarray, old_mass: np.ndarray
) -> np.ndarray:
    """Mass formed in each age bin for the two-component history.

    Parameters
    ----------
    age_edges : ndarray, shape (n_age + 1,)
        Age-bin edges in yr.
    age_univ : ndarray, shape (n,)
        Age of the Universe at each galaxy's redshift, yr (no stars older than this).
    tau_gyr : ndarray, shape (n,)
        e-folding time of the delayed-tau component, Gyr.
    sfr : ndarray, shape (n,)
        Current SFR (M_sun/yr), held constant over the last :data:`YOUNG_AGE` years.
    old_mass : ndarray, shape (n,)
        Mass formed by the delayed-tau component (older than ``YOUNG_AGE``), M_sun.

    Returns
    -------
    ndarray, shape (n, n_age)
        Mass formed in each bin, M_sun.
    """
    lo, hi = age_edges[:-1], age_edges[1:]
    young = np.clip(np.minimum(hi, YOUNG_AGE) - lo, 0.0, None)[None, :] * sfr[:, None]
    # Delayed tau in formation time t = T - age; evaluate at 8 sub-steps per bin.
    frac = (np.arange(8) + 0.5) / 8
    lo_c = np.maximum(lo, YOUNG_AGE)[None, :, None]
    hi_c = np.minimum(hi[None, :, None], age_univ[:, None, None])
    width = np.clip(hi_c - lo_c, 0.0, None)
    ages = lo_c + width * frac[None, None, :]
    t = np.clip(age_univ[:, None, None] - ages, 0.0, None) / 1e9
    tau = tau_gyr[:, None, None]
    shape = (t * np.exp(-t / tau) * width / 8).sum(axis=2)
    norm = shape.sum(axis=1, keepdims=True)
    old = np.where(norm > 0, shape / np.where(norm > 0, norm, 1.0), 0.0) * old_mass[:, None]
    return young + old


def metallicity_weights(log_z: np.ndarray, grid: np.ndarray = GRID_METALLICITIES) -> np.ndarray:
    """Linear-in-log interpolation weights over the grid metallicities, shape (n, n_z)."""
    lg = np.log10(grid)
    x = np.clip(log_z, lg[0], lg[-1])
    j = np.clip(np.searchsorted(lg, x) - 1, 0, len(lg) - 2)
    f = (x - lg[j]) / (lg[j + 1] - lg[j])
    w = np.zeros((len(x), len(lg)))
    rows = np.arange(len(x))
    w[rows, j] = 1 - f
    w[rows, j + 1] += f
    return w


@dataclass(frozen=True)
class BasisTables:
    """Per-basis-element quantities used to draw the catalogue without full spectra."""

    line_cont: np.ndarray  # (n_z*n_age, n_lines): mean L_lambda within +-15 A of each line
    lick: dict  # index name -> (n_z*n_age, 3): blue mean, index integral, red mean of L_lambda
    r_band: np.ndarray  # (n_z*n_age,): mean L_lambda over 5500-7000 A (r band proxy)


@functools.lru_cache(maxsize=2)
def basis_tables() -> BasisTables:
    b = load_stellar_basis()
    flat = b.spectra.reshape(-1, b.spectra.shape[-1]).astype(float)
    w = b.wave

    def band_mean(lo: float, hi: float) -> np.ndarray:
        m = (w >= lo) & (w <= hi)
        return flat[:, m].mean(axis=1)

    line_cont = np.stack([band_mean(lw - 15, lw + 15) for lw in LINE_WAVES], axis=1)
    lick = {}
    for key, (_, ((b1, b2), (i1, i2), (r1, r2))) in LICK_INDICES.items():
        m = (w >= i1) & (w <= i2)
        index_int = np.trapezoid(flat[:, m], w[m], axis=1)
        lick[key] = np.stack([band_mean(b1, b2), index_int, band_mean(r1, r2)], axis=1)
    return BasisTables(line_cont=line_cont, lick=lick, r_band=band_mean(5500, 7000))


def lick_ew(band: np.ndarray, bands: tuple, infill: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Lick index EW (A, positive = absorption) from band quantities, minus emission infill.

    ``band`` has columns (blue mean, index integral, red mean); returns (EW, pseudo-continuum
    at the index centre).
    """
    (b1, b2), (i1, i2), (r1, r2) = bands
    bc, ic, rc = 0.5 * (b1 + b2), 0.5 * (i1 + i2), 0.5 * (r1 + r2)
    cont = band[:, 0] + (band[:, 2] - band[:, 0]) * (ic - bc) / (rc - bc)
    return ((i2 - i1) * cont - band[:, 1] - infill) / cont, cont
