"""One chunk of the universe's population, drawn phase by phase (the model is described in
:mod:`specdenoise.sources.universe`)."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pandas as pd

from specdenoise.config import UniverseConfig
from specdenoise.physics.constants import C_KMS, FLUX_UNIT, SIGMA_INST_KMS, SOLAR_OH
from specdenoise.physics.grids import (
    GRID_LOGU,
    L_SUN,
    LINE_NAMES,
    LINE_WAVES,
    LINES,
    load_nebular_ratios,
    load_stellar_basis,
)
from specdenoise.physics.nebular import line_index, line_wave, liner_ratios, nlr_ratios
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
from specdenoise.physics.sky import sky_noise_shape
from specdenoise.physics.stellar import LICK_INDICES, basis_tables, lick_ew, metallicity_weights, sfh_mass_weights

CATALOGUE_LINES = (
    "Halpha",
    "Hbeta",
    "Hdelta",
    "OII_3726",
    "OII_3729",
    "OIII_4363",
    "OIII_5007",
    "NII_6583",
    "SII_6716",
    "SII_6731",
)


def _inverse_cdf_sample(rng: np.random.Generator, x: np.ndarray, pdf: np.ndarray, n: int) -> np.ndarray:
    cdf = np.concatenate([[0.0], np.cumsum(0.5 * (pdf[1:] + pdf[:-1]) * np.diff(x))])
    return np.interp(rng.random(n) * cdf[-1], cdf, x)


def _gsmf(log_mass: np.ndarray) -> np.ndarray:
    """Baldry et al. (2012) double Schechter, per dex."""
    m = 10.0 ** (log_mass - 10.66)
    return np.log(10) * np.exp(-m) * m * (3.96e-3 * m**-0.35 + 0.79e-3 * m**-1.47)


class _Chunk(SimpleNamespace):
    """The galaxies of one chunk, built up phase by phase (every array has length ``n``)."""


def draw_chunk(cfg: UniverseConfig, n: int, rng: np.random.Generator, id_offset: int):
    """Draw ``n`` galaxies with ``rng``; ids start at ``id_offset``.

    The phases run in this order and consume ``rng`` in this order (a galaxy's values depend
    only on the seed and its chunk): redshift and mass, type, star formation, metallicities,
    dust and kinematics, stellar mass, emission lines, line measurement, Balmer absorption,
    classification, calibration residuals.
    """
    g = _Chunk(n=n, basis=load_stellar_basis(), tables=basis_tables())
    _z_mass(cfg, g, rng)
    g.extra = rng.random((n, 4))
    _types(cfg, g)
    _star_formation(cfg, g)
    _metallicities(cfg, g)
    _dust_kinematics(cfg, g)
    _stellar_mass(g)
    _emission_lines(g, load_nebular_ratios(), rng)
    _measure_lines(cfg, g, rng)
    _balmer_absorption(cfg, g, rng)
    _classify(g)
    g.calib = cfg.calibration_error / np.sqrt(3) * rng.standard_normal((n, 3))  # smooth flux-calibration residuals
    return _frame(g, id_offset)


def _z_mass(cfg: UniverseConfig, g: _Chunk, rng: np.random.Generator) -> None:
    """Redshift and mass, flux-limited by rejection (batches are deterministic in the seed)."""
    n = g.n
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
    g.z = np.concatenate(keep_z)[:n]
    g.lm = np.concatenate(keep_m)[:n]
    g.quenched = np.concatenate(keep_q)[:n]
    g.u = np.concatenate(keep_u)[:n]


def _types(cfg: UniverseConfig, g: _Chunk) -> None:
    """Physical type: 0 star-forming, 1 quenched, 2 narrow-line AGN, 3 broad-line AGN."""
    ptype = np.where(g.quenched, 1, 0)
    p_agn = cfg.agn_fraction / (1.0 + np.exp(-(g.lm - 10.4) / 0.25))
    is_agn = g.extra[:, 0] < p_agn
    is_blagn = g.extra[:, 1] < cfg.blagn_fraction
    ptype = np.where(is_agn, 2, ptype)
    g.ptype = np.where(is_blagn, 3, ptype)


def _star_formation(cfg: UniverseConfig, g: _Chunk) -> None:
    """SFR about the main sequence by type, the delayed-tau time scale and the age of the universe."""
    lm, u, ptype = g.lm, g.u, g.ptype
    g.ms = ms = sfms(lm)
    log_sfr = ms + cfg.sfms_scatter * u[:, 1]
    log_sfr = np.where(ptype == 1, ms - 1.6 + 0.4 * u[:, 1], log_sfr)
    log_sfr = np.where(ptype >= 2, ms - 0.6 + 0.5 * u[:, 1], log_sfr)
    g.log_sfr = np.minimum(log_sfr, lm - 8.6)  # sSFR <= 10^-8.6 /yr
    g.sfr = 10.0**g.log_sfr
    tau = np.where(ptype == 1, 0.6 + 2.0 * g.extra[:, 2], 2.0 + 12.0 * g.extra[:, 2])
    g.tau = np.where(ptype >= 2, 1.5 + 4.0 * g.extra[:, 2], tau)
    g.age_univ = age_of_universe_yr(g.z)


def _metallicities(cfg: UniverseConfig, g: _Chunk) -> None:
    """Gas (MZR with the SFR term) and stellar metallicities, ionisation parameter."""
    lm, u = g.lm, g.u
    oh = mzr(lm) - cfg.mzr_sfr_slope * (g.log_sfr - g.ms) + cfg.mzr_scatter * u[:, 2]
    g.oh = np.where(g.ptype == 1, mzr(lm) + cfg.mzr_scatter * u[:, 2], oh)  # retired: no FMR term
    g.log_zgas = g.oh - SOLAR_OH
    g.log_zstar = np.clip(0.3 * (lm - 10.5) + 0.1 * u[:, 3], -1.3, 0.35)
    g.log_u = np.clip(-0.8 * g.log_zgas - 3.45 + 0.2 * u[:, 4], -3.95, -1.55)


def _dust_kinematics(cfg: UniverseConfig, g: _Chunk) -> None:
    """Dust (Garn & Best 2010), velocity dispersions, fibre aperture fraction and noise level."""
    lm, u, ptype = g.lm, g.u, g.ptype
    x = lm - 10.0
    a_ha = np.clip(0.91 + 0.77 * x + 0.11 * x**2 - 0.09 * x**3 + 0.3 * u[:, 5], 0.0, 3.5)
    a_ha = np.where(ptype == 1, 0.3 * a_ha, a_ha)
    g.ebv_gas = a_ha / cardelli(np.array([6562.8]))[0]
    g.ebv_star = 0.44 * g.ebv_gas
    g.sigma_star = np.clip(10 ** (2.0 + 0.29 * (lm - 10.0) + 0.06 * u[:, 6]), 30.0, 380.0)
    g.sigma_gas = np.clip(np.where(ptype == 1, 0.8, 0.5) * g.sigma_star + 8 * u[:, 7], 25.0, 250.0)
    g.fib = np.clip(0.28 - 0.08 * (lm - 10.0) + 4.0 * (g.z - 0.037) + 0.07 * u[:, 8], 0.08, 0.75)
    g.noise_level = cfg.sky_sigma * 10 ** (0.08 * u[:, 9])


def _basis_project(g: _Chunk, table: np.ndarray) -> np.ndarray:
    """Sum over Z and age of weight x ``table`` (shape (n_z * n_age, k)); chunked so the
    (n, n_z * n_age) weight matrix never exists whole (memory stays bounded at any n)."""
    n_z, n_age = g.basis.spectra.shape[:2]
    out = np.empty((g.n, table.shape[1]))
    for a in range(0, g.n, 20000):
        sl = slice(a, a + 20000)
        full = (g.zw[sl, :, None] * g.weights[sl, None, :]).reshape(-1, n_z * n_age)
        out[sl] = full @ table
    return out


def _star_att(g: _Chunk, wave: np.ndarray) -> np.ndarray:
    return 10 ** (-0.4 * calzetti(wave)[None, :] * g.ebv_star[:, None])


def _stellar_mass(g: _Chunk) -> None:
    """Mass formed per age bin (old component scaled so the live mass is M*); continuum under each line."""
    basis, n = g.basis, g.n
    g.zw = metallicity_weights(g.log_zstar, basis.metallicities)  # (n, n_z)
    live = g.zw @ basis.live_frac  # (n, n_age) live fraction at each age bin for this Z
    young_w = sfh_mass_weights(basis.age_edges, g.age_univ, g.tau, g.sfr, np.zeros(n))
    unit_old = sfh_mass_weights(basis.age_edges, g.age_univ, g.tau, np.zeros(n), np.ones(n))
    live_young = (young_w * live).sum(1)
    live_old_per_unit = (unit_old * live).sum(1)
    g.old_mass = np.clip((10.0**g.lm - live_young) / live_old_per_unit, 0.0, None)
    g.weights = young_w + unit_old * g.old_mass[:, None]  # (n, n_age) mass formed per bin
    g.dl = luminosity_distance_cm(g.z)
    g.to_flux = L_SUN / (4 * np.pi * g.dl**2) / FLUX_UNIT  # L_sun/A -> 1e-17 erg/s/cm2/A (x (1+z)^-1 below)
    # continuum under each line in the observed fibre, flux density per observed A
    g.cont_lines = (
        _basis_project(g, g.tables.line_cont) * _star_att(g, LINE_WAVES) * (g.fib * g.to_flux / (1 + g.z))[:, None]
    )


def _emission_lines(g: _Chunk, ratios: np.ndarray, rng: np.random.Generator) -> None:
    """Line luminosities (star formation, LINER-like, narrow-line AGN), fibre fluxes, broad lines."""
    n, u, ptype, z, dl = g.n, g.u, g.ptype, g.z, g.dl
    ia = line_index("Halpha")
    g.lum = lum = np.zeros((n, len(LINE_NAMES)))
    # star formation (all but pure retired): Cloudy ratios at (Z, log U), bilinear
    zwg = metallicity_weights(g.log_zgas)
    uj = np.clip(np.searchsorted(GRID_LOGU, g.log_u) - 1, 0, len(GRID_LOGU) - 2)
    uf = (g.log_u - GRID_LOGU[uj]) / (GRID_LOGU[1] - GRID_LOGU[0])
    rat = np.einsum("nz,nzl->nl", zwg, ratios[:, uj, :].transpose(1, 0, 2) * (1 - uf)[:, None, None])
    rat += np.einsum("nz,nzl->nl", zwg, ratios[:, uj + 1, :].transpose(1, 0, 2) * uf[:, None, None])
    l_ha_sf = 10.0 ** (g.log_sfr + 41.27)
    lum += np.where(ptype != 1, l_ha_sf, 0.0)[:, None] * rat
    # retired galaxies: LINER-like diffuse emission, EW(H-alpha) ~ 0.3-3 A
    g.ew_ret = 10 ** (-0.2 + 0.4 * u[:, 10])
    cont_ha_total = g.cont_lines[:, ia] / (g.fib * g.to_flux / (1 + z)) * L_SUN  # erg/s/A, total, attenuated
    l_ha_ret = np.where(ptype == 1, g.ew_ret * cont_ha_total, 0.0)
    lum += l_ha_ret[:, None] * liner_ratios(rng, n)
    # narrow-line AGN (types agn and blagn): NLR luminosity grows with mass
    g.agn_on = ptype >= 2
    l_oiii = 10 ** (39.6 + 0.5 * (g.lm - 10.5) + 0.45 * u[:, 11])
    nlr, g.bpt_x, g.bpt_y = nlr_ratios(rng, n)  # per unit L([OIII]5007)
    g.l_nlr = np.where(g.agn_on, l_oiii, 0.0)[:, None] * nlr
    # observed fibre fluxes (1e-17 erg/s/cm2)
    g.gas_att = 10 ** (-0.4 * cardelli(LINE_WAVES)[None, :] * g.ebv_gas[:, None])
    flux_lines = (lum * g.fib[:, None] + g.l_nlr) * g.gas_att / (4 * np.pi * dl[:, None] ** 2) / FLUX_UNIT
    # broad-line AGN: L5100 and broad Balmer lines (fibre sees the whole nucleus)
    g.l5100 = np.where(ptype == 3, 10 ** (42.3 + 0.4 * u[:, 12]), 0.0)  # lambda L_lambda, erg/s
    g.broad_fwhm = np.clip(4000 + 1500 * u[:, 13], 1500, 9000)
    l_hb_broad = g.l5100 * 10 ** (-1.7 + 0.15 * u[:, 14])  # EW(Hb) ~ 100 A
    g.broad_hb_flux = l_hb_broad / (4 * np.pi * dl**2) / FLUX_UNIT
    agn_cont5100 = g.l5100 / 5100.0 / (4 * np.pi * dl**2) / FLUX_UNIT / (1 + z)  # per observed A
    broad_ratio = {"Halpha": 3.5, "Hbeta": 1.0, "Hgamma": 0.45, "Hdelta": 0.25}
    g.total_lines = flux_lines.copy()
    for name, r in broad_ratio.items():
        att = 10 ** (-0.4 * cardelli(np.array([line_wave(name)]))[0] * g.ebv_gas)
        g.total_lines[:, line_index(name)] += r * g.broad_hb_flux * att
    # continuum at lines incl. AGN power law f_lambda ~ lambda^-1.5
    g.cont_lines = g.cont_lines + agn_cont5100[:, None] * (LINE_WAVES[None, :] / 5100.0) ** -1.5


def _measure_lines(cfg: UniverseConfig, g: _Chunk, rng: np.random.Generator) -> None:
    """Measured line fluxes: CRB-level Gaussian-line errors at the sky-limited noise (+ Poisson)."""
    z = g.z
    lw_obs = np.log10(LINE_WAVES[None, :] * (1 + z[:, None]))
    sky = (g.noise_level[:, None] * sky_noise_shape(lw_obs)) ** 2
    sig_pix = np.sqrt(sky + cfg.poisson_coeff * np.clip(g.cont_lines, 0, None))
    dlam_pix = LINE_WAVES[None, :] * (1 + z[:, None]) * np.log(10) * 1e-4
    s_kms = np.where(g.ptype[:, None] >= 2, 250.0, g.sigma_gas[:, None])
    s_lam = LINE_WAVES[None, :] * (1 + z[:, None]) * np.sqrt(s_kms**2 + SIGMA_INST_KMS**2) / C_KMS
    g.flux_err = sig_pix * np.sqrt(2 * np.sqrt(np.pi) * s_lam * dlam_pix)
    g.flux_meas = g.total_lines + g.flux_err * rng.standard_normal((g.n, len(LINE_NAMES)))


def _balmer_absorption(cfg: UniverseConfig, g: _Chunk, rng: np.random.Generator) -> None:
    """Lick HdeltaA and Hbeta with emission infill, their measurement and S/N."""
    z = g.z
    g.balmer = {}
    for key, (line, _) in LICK_INDICES.items():
        band = _basis_project(g, g.tables.lick[key]) * _star_att(g, np.array([LINES[line][0]]))  # L_sun/A, galaxy
        infill = g.total_lines[:, line_index(line)] / (g.fib * g.to_flux)  # line flux -> L_sun, whole galaxy
        ew, cont = lick_ew(band, LICK_INDICES[key][1], infill)
        lam = LINES[line][0]
        cont_obs = cont * g.fib * g.to_flux / (1 + z)
        sky = (g.noise_level * sky_noise_shape(np.log10(lam * (1 + z)))) ** 2
        sig = np.sqrt(sky + cfg.poisson_coeff * np.clip(cont_obs, 0, None))
        (i1, i2) = LICK_INDICES[key][1][1]
        dl_rest = lam * np.log(10) * 1e-4  # rest-frame A per SDSS pixel
        err = 1.3 * sig / np.clip(cont_obs, 1e-6, None) * np.sqrt((i2 - i1) / dl_rest) * dl_rest
        g.balmer[key] = (ew, ew + err * rng.standard_normal(g.n), err)


def _classify(g: _Chunk) -> None:
    """Classes by the paper's rules (section 2) from the measured quantities."""
    absorption = np.zeros(g.n, dtype=bool)
    for _ew, meas, err in g.balmer.values():
        absorption |= meas / err > 3
    ia, ib = line_index("Halpha"), line_index("Hbeta")
    snr = g.flux_meas / g.flux_err
    em = (snr[:, ia] > 3) & (snr[:, ib] > 3)
    with np.errstate(divide="ignore", invalid="ignore"):
        x_bpt = np.log10(np.clip(g.flux_meas[:, line_index("NII_6583")], 1e-3, None) / g.flux_meas[:, ia])
        y_bpt = np.log10(np.clip(g.flux_meas[:, line_index("OIII_5007")], 1e-3, None) / g.flux_meas[:, ib])
    agn_bpt = y_bpt > kewley01(x_bpt)
    cls = np.where(em & agn_bpt, 3, np.where(em, 0, np.where(absorption, 1, 2)))
    g.cls = np.where(g.ptype == 3, 4, cls)


def _frame(g: _Chunk, id_offset: int) -> pd.DataFrame:
    """The catalogue rows of the chunk: truth, measured quantities, classes."""
    n, ptype, fib, dl = g.n, g.ptype, g.fib, g.dl
    r_lum = _basis_project(g, g.tables.r_band[:, None])[:, 0]
    df = pd.DataFrame(
        {
            "id": id_offset + np.arange(n, dtype=np.int64),
            "z": g.z,
            "ptype": pd.Categorical.from_codes(ptype, PTYPES),
            "class": pd.Categorical.from_codes(g.cls, CLASSES),
            "log_mass": g.lm,
            "log_sfr": g.log_sfr,
            "log_ssfr": g.log_sfr - g.lm,
            "oh": g.oh,
            "log_zstar": g.log_zstar,
            "log_u": g.log_u,
            "tau_gyr": g.tau,
            "old_mass": g.old_mass,
            "age_univ_yr": g.age_univ,
            "ebv_gas": g.ebv_gas,
            "ebv_star": g.ebv_star,
            "sigma_star": g.sigma_star,
            "sigma_gas": g.sigma_gas,
            "fib_frac": fib,
            "noise_level": g.noise_level,
            "ew_ret": np.where(ptype == 1, g.ew_ret, 0.0),
            "l5100": g.l5100,
            "broad_fwhm": g.broad_fwhm,
            "broad_hb_flux": g.broad_hb_flux,
            "bpt_x_nlr": np.where(g.agn_on, g.bpt_x, np.nan),
            "bpt_y_nlr": np.where(g.agn_on, g.bpt_y, np.nan),
            "r_lum_fibre": r_lum * fib,
            "calib_p1": g.calib[:, 0],
            "calib_p2": g.calib[:, 1],
            "calib_p3": g.calib[:, 2],
            "mass_weighted_age_gyr": (g.weights * g.basis.age_centres).sum(1) / g.weights.sum(1) / 1e9,
        }
    )
    for key, (ew, meas, err) in g.balmer.items():
        df[f"{key}"] = ew
        df[f"{key}_meas"] = meas
        df[f"{key}_err"] = err
    for k, name in enumerate(LINE_NAMES):
        df[f"{name}_flux"] = g.total_lines[:, k]
        if name in CATALOGUE_LINES:
            df[f"{name}_flux_meas"] = g.flux_meas[:, k]
            df[f"{name}_flux_err"] = g.flux_err[:, k]
    # narrow-only fluxes and kinematics, needed to synthesise lines exactly
    for k, name in enumerate(LINE_NAMES):
        df[f"{name}_flux_sf"] = (g.lum[:, k] * fib * g.gas_att[:, k]) / (4 * np.pi * dl**2) / FLUX_UNIT
        df[f"{name}_flux_nlr"] = (g.l_nlr[:, k] * g.gas_att[:, k]) / (4 * np.pi * dl**2) / FLUX_UNIT
    return df
