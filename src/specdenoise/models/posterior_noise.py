"""Simulated observations of clean normalised spectra over the whole S/N range (posterior family).

:func:`observe_normalised` adds noise the way a survey does, in the rest-frame normalised units
the model works in: a noise shape (``white``; ``sky``, the SDSS sky from
:func:`specdenoise.physics.sky.sky_noise_shape` at the galaxy's observed wavelengths; ``desi``, a
DESI coadd noise shape; ``arms``, a random multi-arm spectrograph: :func:`arms_shape`) scaled to a
target continuum S/N per pixel, Poisson noise on the object,
random masked gaps (ivar = 0); then the spectrum is divided by its *noisy* L2 norm as
:func:`specdenoise.data.preprocess.preprocess` does, and the truth is returned in the same units.
"""

from __future__ import annotations

import numpy as np

from specdenoise.physics.sky import sky_noise_shape

SHAPES = ("white", "sky", "desi", "arms")


def arms_shape(obs: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A random multi-arm spectrograph's relative sigma (n, P) at observed wavelengths ``obs``.

    Each spectrum gets 1-3 arms with random boundaries; within an arm the throughput falls towards
    both ends, so sigma rises as ``1 + a t^4`` (``t`` in [-1, 1] across the arm, ``a`` log-uniform in
    [0.5, 10]); a random power of wavelength (index in [-3, 1]) tilts the whole range and the SDSS sky
    shape multiplies it with a random weight. It stands in for the real surveys' shapes (the DESI one
    is kept out of training, so the benchmark's ``desi`` bins test a shape the model never saw).
    """
    n, p = obs.shape
    x = np.linspace(0.0, 1.0, p)
    out = np.empty((n, p))
    n_arms = rng.integers(1, 4, n)
    for i in range(n):
        cuts = np.r_[0.0, np.sort(rng.uniform(0.15, 0.85, n_arms[i] - 1)), 1.0]
        arm = np.clip(np.searchsorted(cuts, x, side="right") - 1, 0, n_arms[i] - 1)
        lo, hi = cuts[arm], cuts[arm + 1]
        t = 2.0 * (x - lo) / np.maximum(hi - lo, 1e-9) - 1.0
        a = np.exp(rng.uniform(np.log(0.5), np.log(10.0), n_arms[i]))[arm]
        tilt = (obs[i] / obs[i].mean()) ** rng.uniform(-3.0, 1.0)
        out[i] = (1.0 + a * t**4) * tilt
    sky = sky_noise_shape(np.log10(obs))
    w = rng.random(n)[:, None]
    return out * (1.0 - w + w * sky / np.median(sky, axis=1, keepdims=True))


def noise_shape(
    kind: str,
    wave: np.ndarray,
    z: np.ndarray,
    desi: tuple[np.ndarray, np.ndarray] | None = None,
    rng: np.random.Generator | None = None,
):
    """Relative per-pixel sigma (n, P) of noise ``kind`` at rest wavelengths ``wave`` for redshifts ``z``
    (``arms`` draws its shapes from ``rng``)."""
    obs = wave[None, :] * (1 + np.asarray(z, dtype=float))[:, None]
    if kind == "white":
        return np.ones_like(obs)
    if kind == "sky":
        return sky_noise_shape(np.log10(obs))
    if kind == "arms":
        if rng is None:
            raise ValueError("arms noise shape needs a random generator")
        return arms_shape(obs, rng)
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
    shape = noise_shape(kind, wave, z, desi, rng)
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
    """Observations with log-uniform S/N in ``snr_range`` and the noise shapes mixed (calibration):
    ``white``, ``sky`` and ``arms`` always, ``desi`` where its shape is given."""
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
