"""Observe universe galaxies: noise-free and noisy SDSS-like spectra for catalogue rows.

For each galaxy the rest-frame stellar spectrum is the star-formation history (mass formed
per age bin) times the BC03+MILES basis, attenuated (Calzetti), broadened by the stellar
velocity dispersion (the MILES 2.5 A resolution stands in for the SDSS instrumental
resolution: both are ~65 km/s), redshifted onto the SDSS grid (log10 lambda step 1e-4,
3800-9200 A) and dimmed by the luminosity distance and fibre fraction. Emission lines are
pixel-integrated Gaussians (narrow: sqrt(sigma_gas^2 + sigma_inst^2); NLR 250 km/s; broad
Balmer lines for broad-line AGN) with the catalogue's fluxes. A smooth multiplicative
flux-calibration residual (Legendre orders 1-3, rms ``calibration_error``; SDSS
spectrophotometry is good to a few per cent) is part of the noise-free spectrum. The noise is the real SDSS sky
shape scaled to the galaxy's ``noise_level`` plus object Poisson noise; a fraction of pixels
is flagged bad (ivar = 0).

Each galaxy's noise comes from its own generator seeded with ``(seed, id)``, so a spectrum
does not depend on which other galaxies are synthesised with it or on the chunk size.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
from scipy.special import erf
from tqdm.auto import tqdm

from specdenoise.config import UniverseConfig
from specdenoise.data.artefacts import OBSERVE_COLUMNS, Observed, load_sample
from specdenoise.physics.constants import C_KMS, FLUX_UNIT, SIGMA_INST_KMS
from specdenoise.physics.grids import L_SUN, LINE_NAMES, LINE_WAVES, load_stellar_basis
from specdenoise.physics.nebular import line_index
from specdenoise.physics.relations import calzetti, cardelli, luminosity_distance_cm
from specdenoise.physics.sky import sky_noise_shape
from specdenoise.physics.stellar import metallicity_weights, sfh_mass_weights

SDSS_WAVE_MIN = 3800.0
SDSS_WAVE_MAX = 9200.0
SDSS_DLOG = 1e-4
NLR_SIGMA_KMS = 250.0
BROAD_RATIOS = {"Halpha": 3.5, "Hbeta": 1.0, "Hgamma": 0.45, "Hdelta": 0.25}


def sdss_loglam() -> np.ndarray:
    """The SDSS observed-frame grid: log10(lambda / A) from 3800 to 9200 A in 1e-4 steps."""
    lo = np.round(np.log10(SDSS_WAVE_MIN), 4)
    return lo + SDSS_DLOG * np.arange(int(np.floor((np.log10(SDSS_WAVE_MAX) - lo) / SDSS_DLOG)) + 1)


def _broaden(spec: np.ndarray, sigma_pix: np.ndarray) -> np.ndarray:
    """Gaussian-convolve each row of ``spec`` (n, n_wave) by ``sigma_pix`` (n,) via FFT."""
    pad = 256
    padded = np.pad(spec, ((0, 0), (pad, pad)), mode="edge")
    n_fft = padded.shape[1]
    freq = np.fft.rfftfreq(n_fft)
    kernel = np.exp(-2.0 * (np.pi * freq[None, :] * sigma_pix[:, None]) ** 2)
    out = np.fft.irfft(np.fft.rfft(padded, axis=1) * kernel, n=n_fft, axis=1)
    return out[:, pad:-pad]


def _add_lines(
    flux: np.ndarray,
    loglam: np.ndarray,
    centre: np.ndarray,
    sigma_kms: np.ndarray,
    line_flux: np.ndarray,
    half_window: int,
) -> None:
    """Add pixel-integrated Gaussian lines in place.

    Parameters
    ----------
    flux : ndarray, shape (n, n_pix)
        Spectra in flux density per observed A, modified in place.
    loglam : ndarray, shape (n_pix,)
        log10 observed wavelengths of the pixel centres (uniform step).
    centre : ndarray, shape (n, n_lines)
        Observed line centres, A.
    sigma_kms : ndarray, shape (n, n_lines)
        Total Gaussian sigma (intrinsic and instrumental), km/s.
    line_flux : ndarray, shape (n, n_lines)
        Integrated line fluxes.
    half_window : int
        Pixels evaluated either side of the centre pixel.
    """
    n, n_pix = flux.shape
    dlog = loglam[1] - loglam[0]
    i0 = np.rint((np.log10(centre) - loglam[0]) / dlog).astype(np.int64)
    offs = np.arange(-half_window, half_window + 1)
    idx = i0[..., None] + offs  # (n, L, W)
    lo = 10.0 ** (loglam[0] + (idx - 0.5) * dlog)
    hi = 10.0 ** (loglam[0] + (idx + 0.5) * dlog)
    s = (centre * sigma_kms / C_KMS)[..., None] * np.sqrt(2.0)
    frac = 0.5 * (erf((hi - centre[..., None]) / s) - erf((lo - centre[..., None]) / s))
    dens = frac * line_flux[..., None] / (hi - lo)
    ok = (idx >= 0) & (idx < n_pix) & (line_flux[..., None] != 0)
    rows = np.broadcast_to(np.arange(n)[:, None, None], idx.shape)
    flat = rows[ok] * n_pix + idx[ok]
    flux += np.bincount(flat, weights=dens[ok], minlength=n * n_pix).reshape(n, n_pix)


def synthesise_truth(cat, loglam: np.ndarray | None = None) -> np.ndarray:
    """Noise-free observed-frame fibre spectra of catalogue rows.

    Parameters
    ----------
    cat : pandas.DataFrame
        Rows of :func:`specdenoise.sources.universe.draw_catalogue`.
    loglam : ndarray, shape (n_pix,), optional
        Observed log10 wavelength grid (default :func:`sdss_loglam`).

    Returns
    -------
    ndarray, shape (n, n_pix), float64
        Flux density in 1e-17 erg/s/cm^2/A.
    """
    loglam = sdss_loglam() if loglam is None else loglam
    basis = load_stellar_basis()
    n = len(cat)
    n_z, n_age, n_wave = basis.spectra.shape
    z = cat["z"].to_numpy()
    zw = metallicity_weights(cat["log_zstar"].to_numpy(), basis.metallicities)
    weights = sfh_mass_weights(
        basis.age_edges,
        cat["age_univ_yr"].to_numpy(),
        cat["tau_gyr"].to_numpy(),
        10.0 ** cat["log_sfr"].to_numpy(),
        cat["old_mass"].to_numpy(),
    )
    w = (zw[:, :, None] * weights[:, None, :]).reshape(n, n_z * n_age).astype(np.float32)
    rest = (w @ basis.spectra.reshape(n_z * n_age, n_wave)).astype(np.float64)  # L_sun/A
    rest *= 10.0 ** (-0.4 * calzetti(basis.wave)[None, :] * cat["ebv_star"].to_numpy()[:, None])
    sigma_pix = cat["sigma_star"].to_numpy() / (C_KMS * np.log(10) * basis.dlog)
    rest = _broaden(rest, sigma_pix)

    # redshift: sample the rest grid at lambda_obs / (1+z), linear in log lambda
    pos = (loglam[None, :] - np.log10(1 + z)[:, None] - basis.log_wave[0]) / basis.dlog
    j = np.clip(np.floor(pos).astype(np.int64), 0, n_wave - 2)
    f = np.clip(pos - j, 0.0, 1.0)
    obs = np.take_along_axis(rest, j, axis=1) * (1 - f) + np.take_along_axis(rest, j + 1, axis=1) * f
    dl = luminosity_distance_cm(z)
    scale = L_SUN * cat["fib_frac"].to_numpy() / (4 * np.pi * dl**2) / FLUX_UNIT / (1 + z)
    obs *= scale[:, None]

    # AGN power-law continuum (broad-line AGN only), f_lambda ~ lambda_rest^-1.5
    l5100 = cat["l5100"].to_numpy()
    if np.any(l5100 > 0):
        c5100 = l5100 / 5100.0 / (4 * np.pi * dl**2) / FLUX_UNIT / (1 + z)
        lam_rest = 10.0 ** (loglam[None, :] - np.log10(1 + z)[:, None])
        obs += c5100[:, None] * (lam_rest / 5100.0) ** -1.5

    # smooth spectrophotometric calibration residual (Legendre orders 1-3 over the grid)
    x = np.linspace(-1.0, 1.0, len(loglam))
    legendre = np.stack([x, 0.5 * (3 * x**2 - 1), 0.5 * (5 * x**3 - 3 * x)])  # (3, n_pix)
    coef = cat[["calib_p1", "calib_p2", "calib_p3"]].to_numpy()
    calib = 1.0 + coef @ legendre

    # narrow lines: star-forming / diffuse component and NLR component
    centre = LINE_WAVES[None, :] * (1 + z[:, None])
    sig_sf = np.sqrt(cat["sigma_gas"].to_numpy() ** 2 + SIGMA_INST_KMS**2)[:, None] * np.ones(len(LINE_NAMES))
    f_sf = np.stack([cat[f"{k}_flux_sf"].to_numpy() for k in LINE_NAMES], axis=1)
    f_nlr = np.stack([cat[f"{k}_flux_nlr"].to_numpy() for k in LINE_NAMES], axis=1)
    _add_lines(obs, loglam, centre, sig_sf, f_sf, half_window=24)
    if np.any(f_nlr != 0):
        sig_nlr = np.full_like(sig_sf, np.hypot(NLR_SIGMA_KMS, SIGMA_INST_KMS))
        _add_lines(obs, loglam, centre, sig_nlr, f_nlr, half_window=40)
    # broad Balmer lines
    broad = np.flatnonzero(cat["broad_hb_flux"].to_numpy() > 0)
    if len(broad):
        names = list(BROAD_RATIOS)
        lw = np.array([LINE_WAVES[line_index(k)] for k in names])
        ebv = cat["ebv_gas"].to_numpy()[broad]
        fb = cat["broad_hb_flux"].to_numpy()[broad][:, None] * np.array([BROAD_RATIOS[k] for k in names])
        fb = fb * 10 ** (-0.4 * cardelli(lw)[None, :] * ebv[:, None])
        sb = cat["broad_fwhm"].to_numpy()[broad] / 2.3548
        sig_b = np.hypot(sb, SIGMA_INST_KMS)[:, None] * np.ones(len(names))
        sub = obs[broad]
        _add_lines(sub, loglam, lw[None, :] * (1 + z[broad, None]), sig_b, fb, half_window=400)
        obs[broad] = sub
    return obs * calib


def observe_noise(
    truth: np.ndarray, cat, cfg: UniverseConfig, loglam: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Draw SDSS-like noise for noise-free spectra.

    Returns
    -------
    flux, ivar : ndarray, shape (n, n_pix), float64
        Noisy flux (1e-17 erg/s/cm^2/A) and inverse variance; bad pixels have ivar = 0.
    """
    loglam = sdss_loglam() if loglam is None else loglam
    shape = sky_noise_shape(loglam)
    level = cat["noise_level"].to_numpy()
    var = (level[:, None] * shape[None, :]) ** 2 + cfg.poisson_coeff * np.clip(truth, 0.0, None)
    sigma = np.sqrt(var)
    flux = np.empty_like(truth)
    ivar = 1.0 / var
    for r, gid in enumerate(cat["id"].to_numpy()):
        rng = np.random.default_rng([cfg.seed, 7, int(gid)])
        flux[r] = truth[r] + sigma[r] * rng.standard_normal(truth.shape[1])
        if cfg.bad_pixel_fraction > 0:
            ivar[r, rng.random(truth.shape[1]) < cfg.bad_pixel_fraction] = 0.0
    return flux, ivar


def observe(cat, cfg: UniverseConfig, chunk_size: int | None = None, progress: bool = False) -> dict[str, np.ndarray]:
    """Synthesise truth, noisy flux and inverse variance for every row, chunk by chunk.

    Returns a dict with ``loglam`` (n_pix,), ``truth``, ``flux``, ``ivar`` (n, n_pix) float32,
    ``id`` (n,) and ``z`` (n,).
    """
    loglam = sdss_loglam()
    n = len(cat)
    chunk = chunk_size or cfg.chunk_size
    out = {k: np.empty((n, len(loglam)), dtype=np.float32) for k in ("truth", "flux", "ivar")}
    with tqdm(total=n, desc="observe", unit="spec", disable=not progress, leave=False) as bar:
        for start in range(0, n, chunk):
            rows = cat.iloc[start : start + chunk]
            truth = synthesise_truth(rows, loglam)
            flux, ivar = observe_noise(truth, rows, cfg, loglam)
            sl = slice(start, start + len(rows))
            out["truth"][sl], out["flux"][sl], out["ivar"][sl] = truth, flux, ivar
            bar.update(len(rows))
    out["loglam"] = loglam
    out["id"] = cat["id"].to_numpy()
    out["z"] = cat["z"].to_numpy()
    return out


def split_column(cat: Any) -> np.ndarray:
    """The sample's ``split`` column (``train`` for a catalogue without one), as the npz stores it."""
    split = cat["split"].astype(str).tolist() if "split" in cat.columns else ["train"] * len(cat)
    return np.asarray(split, dtype="U8")


def run_observe(params: Any, sample: Path, out: Path, progress: bool = False) -> str:
    """The ``observe`` stage (source ``universe``): synthesise the sample's spectra to ``out``; returns a summary
    line."""
    t0 = time.perf_counter()
    cat = load_sample(sample, OBSERVE_COLUMNS)
    obs = observe(cat, params.universe, progress=progress)
    Observed.from_arrays({**obs, "split": split_column(cat)}).save(out)
    rate = len(cat) / max(time.perf_counter() - t0, 1e-9)
    return f"observe: {len(cat)} spectra x {obs['flux'].shape[1]} pixels ({rate:.0f} spectra/s) -> {out}"
