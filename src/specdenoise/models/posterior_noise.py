"""Simulated observations of clean normalised spectra over the whole S/N range (posterior family).

:func:`observe_normalised` adds noise the way a survey does, in the rest-frame normalised units
the model works in: a noise shape (``white``; ``sky``, the SDSS sky from
:func:`specdenoise.physics.sky.sky_noise_shape` at the galaxy's observed wavelengths; ``desi``, a
DESI coadd noise shape) scaled to a target continuum S/N per pixel, Poisson noise on the object,
random masked gaps (ivar = 0); then the spectrum is divided by its *noisy* L2 norm as
:func:`specdenoise.data.preprocess.preprocess` does, and the truth is returned in the same units.
"""

from __future__ import annotations

import numpy as np

from specdenoise.physics.sky import sky_noise_shape

SHAPES = ("white", "sky", "desi")


def noise_shape(kind: str, wave: np.ndarray, z: np.ndarray, desi: tuple[np.ndarray, np.ndarray] | None = None):
    """Relative per-pixel sigma (n, P) of noise ``kind`` at rest wavelengths ``wave`` for redshifts ``z``."""
    obs = wave[None, :] * (1 + np.asarray(z, dtype=float))[:, None]
    if kind == "white":
        return np.ones_like(obs)
    if kind == "sky":
        return sky_noise_shape(np.log10(obs))
    if kind == "desi":
        if desi is None:
            raise ValueError("desi noise shape needs (wave, shape)")
        dw, ds = desi
        return np.interp(obs, dw, ds) / np.sqrt(np.gradient(obs, axis=1))
    raise ValueError(f"unknown noise shape '{kind}' (known: {', '.join(SHAPES)})")


def observe_normalised(
    clean: np.ndarray,
    wave: np.ndarray,
    z: np.ndarray,
    snr: np.ndarray,
    kind: str,
    rng: np.random.Generator,
    poisson: float = 0.3,
    gap_prob: float = 0.3,
    desi: tuple[np.ndarray, np.ndarray] | None = None,
) -> dict[str, np.ndarray]:
    """Noisy, normalised observations of unit-norm ``clean`` spectra (n, P).

    Parameters
    ----------
    snr : ndarray, shape (n,)
        Target median continuum S/N per pixel (before the Poisson term).
    poisson : float
        Object Poisson variance as a fraction of the sky variance at the median pixel flux.
    gap_prob : float
        Probability that a spectrum has one masked gap (5-40 pixels) and 0.5 % bad pixels.

    Returns
    -------
    dict
        ``flux``, ``ivar``, ``truth`` (n, P) in the noisy-norm units; ``snr`` (n,) measured median S/N.
    """
    n, p = clean.shape
    shape = noise_shape(kind, wave, z, desi)
    med = np.median(np.abs(clean), axis=1)
    sig_sky = shape / np.median(shape, axis=1, keepdims=True) * (med / np.asarray(snr, dtype=float))[:, None]
    var = sig_sky**2 * (1 + poisson * np.clip(clean, 0, None) / med[:, None])
    y = clean + np.sqrt(var) * rng.standard_normal((n, p))
    ivar = 1.0 / var
    gaps = rng.random(n) < gap_prob
    for i in np.flatnonzero(gaps):
        w = int(rng.integers(5, 41))
        s = int(rng.integers(0, p - w))
        ivar[i, s : s + w] = 0.0
        ivar[i, rng.random(p) < 0.005] = 0.0
    bad = ivar == 0
    y = np.where(bad, 0.0, y)
    norm = np.sqrt(np.sum(y**2, axis=1))
    out = {"flux": y / norm[:, None], "ivar": ivar * norm[:, None] ** 2, "truth": clean / norm[:, None]}
    good_snr = np.where(bad, np.nan, out["flux"] * np.sqrt(out["ivar"]))
    out["snr"] = np.nanmedian(good_snr, axis=1)
    return out


def mixed_observations(clean, wave, z, rng, snr_range=(0.3, 300.0), desi=None) -> dict[str, np.ndarray]:
    """Observations with log-uniform S/N in ``snr_range`` and the noise shapes mixed (calibration)."""
    n = len(clean)
    snr = np.exp(rng.uniform(np.log(snr_range[0]), np.log(snr_range[1]), n))
    kinds = [k for k in SHAPES if k != "desi" or desi is not None]
    which = rng.integers(0, len(kinds), n)
    parts = {k: np.empty_like(clean) for k in ("flux", "ivar", "truth")}
    parts["snr"] = np.empty(n)
    for i, kind in enumerate(kinds):
        sel = which == i
        if sel.any():
            o = observe_normalised(clean[sel], wave, z[sel], snr[sel], kind, rng, desi=desi)
            for k in parts:
                parts[k][sel] = o[k]
    return parts
