"""Noise-added spectra (paper section 2) and the noise-model interface.

A noise model gives the per-pixel sigma (in normalised flux units) of the noise it adds. The
paper's model is uniform Gaussian noise of sigma = 0.04 normalised units, after which the
spectra are normalised again. A plain L2 renormalisation would divide every noisy spectrum by
~sqrt(1 + 825 x 0.04^2) = 1.52 and so shrink its signal against the target; the default
divides by the noise-debiased norm instead, which keeps the signal at unit norm (and so keeps
Table 2's absolute variances); a DESI-like, wavelength-dependent model plugs into the same
interface by subclassing :class:`NoiseModel` and registering in :data:`NOISE_MODELS`.

Several seeded realisations are drawn (``noise.n_realisations``), each from its own child of
``numpy.random.SeedSequence(noise.seed)``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from specdenoise.config import NoiseConfig
from specdenoise.data.artefacts import NoisySet, Spectra, level_name, noisy_level_path
from specdenoise.data.preprocess import normalise
from specdenoise.errors import ConfigError
from specdenoise.io import save_json


class NoiseModel(ABC):
    """Additive zero-mean Gaussian noise with a known per-pixel sigma."""

    name: ClassVar[str]

    @abstractmethod
    def sigma(self, wave: np.ndarray, n: int) -> np.ndarray:
        """Per-pixel sigma, shape (n, n_pix) or broadcastable to it, normalised units."""

    def realise(self, clean: np.ndarray, wave: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """Return ``(clean + noise, sigma)`` for spectra of shape (n, n_pix)."""
        sig = np.broadcast_to(self.sigma(wave, clean.shape[0]), clean.shape)
        return clean + sig * rng.standard_normal(clean.shape), sig


class GaussianNoise(NoiseModel):
    """Uniform Gaussian noise of fixed sigma over the whole wavelength range (the paper's)."""

    name = "gaussian"

    def __init__(self, sigma: float) -> None:
        self.level = float(sigma)

    def sigma(self, wave: np.ndarray, n: int) -> np.ndarray:
        return np.full((1, len(wave)), self.level)


NOISE_MODELS: dict[str, Any] = {"gaussian": lambda cfg: GaussianNoise(cfg.sigma)}


def make_noise_model(cfg: NoiseConfig) -> NoiseModel:
    try:
        return NOISE_MODELS[cfg.model](cfg)
    except KeyError:
        raise ConfigError(
            f"noise.model: unknown noise model '{cfg.model}' (known: {', '.join(NOISE_MODELS)})"
        ) from None


def add_noise(flux: np.ndarray, wave: np.ndarray, cfg: NoiseConfig, norm_kind: str = "l2") -> dict[str, np.ndarray]:
    """Draw ``cfg.n_realisations`` noise-added versions of normalised spectra.

    Parameters
    ----------
    flux : ndarray, shape (n, n_pix)
        Normalised spectra (the noise is added to these, as in the paper).
    wave : ndarray, shape (n_pix,)
    cfg : NoiseConfig
    norm_kind : str
        Normalisation applied again after the noise when ``cfg.renormalise``.

    Returns
    -------
    dict
        ``noisy`` (r, n, n_pix) float32; ``renorm`` (r, n), the factor each noisy spectrum
        was divided by (see :func:`renormalisation`; 1 without renormalisation), so
        ``noisy * renorm - flux`` is the noise itself; ``sigma`` (n_pix,) the per-pixel sigma before
        renormalisation (for a model with per-spectrum sigma, its mean); ``seeds`` (r,) the entropy of each
        child seed.
    """
    model = make_noise_model(cfg)
    children = np.random.SeedSequence(cfg.seed).spawn(cfg.n_realisations)
    n, n_pix = flux.shape
    noisy = np.empty((cfg.n_realisations, n, n_pix), dtype=np.float32)
    renorm = np.ones((cfg.n_realisations, n))
    sig_mean = np.zeros(n_pix)
    for r, child in enumerate(children):
        x, sig, renorm[r] = draw_noisy(model, flux, wave, cfg, norm_kind, np.random.default_rng(child))
        sig_mean = np.asarray(sig, dtype=float).mean(axis=0)
        noisy[r] = x
    return {
        "noisy": noisy,
        "renorm": renorm,
        "sigma": sig_mean,
        "seeds": np.array([c.spawn_key[-1] for c in children], dtype=np.int64),
    }


def draw_noisy(
    model: NoiseModel, clean: np.ndarray, wave: np.ndarray, cfg: NoiseConfig, norm_kind: str, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One noise-added, renormalised version of ``clean`` (n, n_pix).

    Returns ``(noisy, sigma, renorm)``: the spectra, the per-pixel sigma of the added noise and
    the factor each spectrum was divided by (1 when ``cfg.renormalise`` is "none").
    """
    x, sig = model.realise(np.asarray(clean, dtype=float), wave, rng)
    k = np.ones(len(x))
    if cfg.renormalise != "none":
        k = renormalisation(x, np.broadcast_to(sig, x.shape), norm_kind, debias=cfg.renormalise == "debiased")
        x = x / k[:, None]
    return x, sig, k


def renormalisation(x: np.ndarray, sigma: np.ndarray, norm_kind: str, debias: bool = True) -> np.ndarray:
    """Factor that normalises noise-added spectra ``x`` (n, n_pix) again.

    For the L2 norm the noise inflates ``||x||^2`` by ``sum(sigma^2)`` on average; with
    ``debias`` the factor is ``sqrt(||x||^2 - sum(sigma^2))``, the estimated norm of the signal,
    so a normalised spectrum keeps unit *signal* norm and the flux scale of its clean target.
    Total-flux and median normalisations are unbiased under zero-mean noise and are used as
    they are.
    """
    k = normalise(x, norm_kind)
    if debias and norm_kind == "l2":
        s2 = np.sum(np.asarray(sigma, dtype=float) ** 2, axis=-1)
        k = np.sqrt(np.clip(k**2 - s2, 0.05 * k**2, None))
    return np.where(np.abs(k) > 0, k, 1.0)


def noisy_ivar(ivar: np.ndarray, sigma: np.ndarray, renorm: np.ndarray) -> np.ndarray:
    """Inverse variance of noise-added spectra: observed variance plus the added noise, renormalised.

    Parameters
    ----------
    ivar : (n, n_pix) inverse variance of the normalised observed spectra (0 = masked)
    sigma : (n_pix,) or (n, n_pix) sigma of the added noise
    renorm : (n,) factor the noisy spectra were divided by
    """
    var = np.where(ivar > 0, 1.0 / np.where(ivar > 0, ivar, 1.0), np.inf) + np.asarray(sigma) ** 2
    return np.where(np.isfinite(var), 1.0 / var, 0.0) * renorm[:, None] ** 2


def added_ivar(noisy: Any) -> np.ndarray:
    """Inverse variance (n_pix,) of the noise added to a noise-added set (``sigma``, normalised
    units): what a noise-aware model is told about the inputs of the benchmark."""
    return 1.0 / np.square(np.asarray(noisy["sigma"], dtype=np.float64))


def at_level(cfg: NoiseConfig, level: float) -> NoiseConfig:
    """The noise settings of one level of ``cfg.levels``.

    The paper level (``cfg.sigma``) keeps ``cfg`` unchanged, so its realisations are those of the
    paper column; any other level gets sigma = ``level`` and its own seed, derived from
    ``(cfg.seed, level in micro-units)`` so that adding or removing a level changes no other level.
    """
    if float(level) == float(cfg.sigma):
        return cfg
    seed = int(np.random.SeedSequence([cfg.seed, round(float(level) * 1e6)]).generate_state(1)[0])
    return cfg.model_copy(update={"sigma": float(level), "seed": seed})


def continuum_snr(flux: np.ndarray, noisy: dict[str, np.ndarray]) -> dict[str, float]:
    """Input continuum S/N per pixel of one level's first realisation.

    Per spectrum: the median over pixels of the clean normalised flux divided by the sigma of the
    renormalised noise (``sigma / renorm``); then the median and the 16th / 84th percentiles over
    the spectra.

    Parameters
    ----------
    flux : ndarray, shape (n, n_pix)
        Clean normalised spectra.
    noisy : dict
        :func:`add_noise` output (``renorm`` (r, n), ``sigma`` (n_pix,)).
    """
    sig = np.median(np.asarray(noisy["sigma"], dtype=float)) / noisy["renorm"][0]
    snr = np.median(flux, axis=1) / sig
    p16, p50, p84 = np.percentile(snr, [16, 50, 84])
    return {"snr_median": float(p50), "snr_p16": float(p16), "snr_p84": float(p84)}


def run(
    cfg: NoiseConfig,
    norm_kind: str,
    spectra: Path,
    out: Path,
    levels_dir: Path | None = None,
    report: Path | None = None,
) -> str:
    """The ``noise`` stage: seeded realisations of the spectra at ``spectra``.

    The paper level (``cfg.sigma``) goes to ``out``; with ``levels_dir``, every other level of
    ``cfg.levels`` to ``<levels_dir>/sigma_<level>.npz`` (one file per level: a level is a
    separately versioned input of the models trained on it, and the paper column keeps its
    file). ``report`` (JSON) gets the continuum S/N per pixel of every level. Returns a summary line.
    """
    pre = Spectra.load(spectra)
    snr: dict[str, dict[str, float]] = {}
    levels = cfg.all_levels if levels_dir is not None else [cfg.sigma]
    for level in levels:
        lc = at_level(cfg, level)
        arrays = add_noise(pre.flux, pre.wave, lc, norm_kind)
        snr[level_name(level)] = {"sigma": float(level), "seed": lc.seed, **continuum_snr(pre.flux, arrays)}
        NoisySet.from_arrays(arrays).save(
            out if float(level) == float(cfg.sigma) else noisy_level_path(levels_dir, level)
        )
    if report is not None:
        save_json(report, {"paper_level": level_name(cfg.sigma), "levels": snr})
    desc = ", ".join(f"{k} (S/N {v['snr_median']:.2f})" for k, v in snr.items())
    return f"noise: {cfg.n_realisations} realisation(s) ({cfg.model}) at sigma = {desc} -> {out}"
