"""The posterior under the universe's own population: what per-class coverage the data allow.

Every Bayesian de-noiser approximates p(clean | data) under some prior; the best it can do is the
posterior under the population the spectra come from. :func:`library_intervals` approximates that
one by weighting a library of N clean spectra drawn from the same universe (disjoint seeds) by each
observation's likelihood: the amplitude profiled (observations are normalised by their noisy norm),
times the Laplace factor B^-1/2 of a flat amplitude prior. Its 16-84 % intervals are right given the
data, on average over spectra that look alike. Within a galaxy class they hold 68 % only where the
data name the class: a class this posterior misses cannot be covered by any posterior that is right
given the data, only by intervals too wide for the galaxies it is confused with. The importance
weights need an effective sample size (ESS) in the hundreds or more: for 60,000 spectra that holds at
S/N <= 3 (median ~1,000 at S/N 3) and fails above (~13 at S/N 10), so :func:`library_by_class` stops
at S/N 3.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from specdenoise.evaluation.coverage_chance import miss_sides
from specdenoise.evaluation.mzr_truth import true_o3n2
from specdenoise.models.posterior_noise import observe_normalised
from specdenoise.models.posterior_sim import draw_clean

#: continuum S/N per pixel of the per-class table (the ESS collapses above, see the module docstring)
LIBRARY_SNRS = (0.5, 1.0, 3.0)
LINES = ("Halpha", "Hbeta", "OIII_5007", "NII_6583")


def log_weights(y: np.ndarray, ivar: np.ndarray, lib: np.ndarray, lib_sq: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Log importance weights (n, N), largest 0 per row, and profiled amplitudes (n, N) of library
    spectra ``lib`` (N, P) (``lib_sq`` = ``lib**2``) for observations ``y`` (n, P) with ``ivar`` (n, P):
    ``-chi^2 / 2 - log(B) / 2`` at the amplitude ``a = max(A / B, 0)``, ``A = sum ivar y x``,
    ``B = sum ivar x^2``."""
    a_num = (ivar * y) @ lib.T
    b = np.maximum(ivar @ lib_sq.T, 1e-300)
    amp = np.clip(a_num / b, 0.0, None)
    chi2 = np.sum(ivar * y**2, axis=1)[:, None] - 2 * amp * a_num + amp**2 * b
    logw = -0.5 * chi2 - 0.5 * np.log(b)
    return logw - logw.max(axis=1, keepdims=True), amp


def weighted_interval(values: np.ndarray, w: np.ndarray, qs=(0.16, 0.84)) -> np.ndarray:
    """Quantiles ``qs`` of ``values`` (N,) under weights ``w`` (N,) (finite values only; NaN if none)."""
    ok = np.isfinite(values) & (w > 0)
    if not ok.any():
        return np.full(len(qs), np.nan)
    order = np.argsort(values[ok])
    v, c = values[ok][order], np.cumsum(w[ok][order])
    return np.interp(np.asarray(qs) * c[-1], c, v)


def library_intervals(
    y: np.ndarray, ivar: np.ndarray, lib: np.ndarray, values: dict[str, np.ndarray], scaled, chunk: int = 200
) -> dict[str, np.ndarray]:
    """16-84 % intervals of each quantity of ``values`` ({name: (N,)} of the library spectra) for the
    observations ``y`` (n, P), ``ivar`` (n, P): ``{name}_lo`` / ``{name}_hi`` (n,) and ``ess`` (n,).
    Names in ``scaled`` scale with the amplitude (line fluxes); the rest do not (ratios, O3N2).
    ``chunk`` observations at a time bound the (chunk, N) weights in memory."""
    lib_sq = lib**2
    out = {f"{k}_{s}": np.empty(len(y)) for k in values for s in ("lo", "hi")}
    out["ess"] = np.empty(len(y))
    for i0 in range(0, len(y), chunk):
        logw, amp = log_weights(y[i0 : i0 + chunk], ivar[i0 : i0 + chunk], lib, lib_sq)
        w = np.exp(logw)
        out["ess"][i0 : i0 + len(w)] = w.sum(axis=1) ** 2 / np.sum(w**2, axis=1)
        for j in range(len(w)):
            for k, v in values.items():
                lo, hi = weighted_interval(v * amp[j] if k in scaled else v, w[j])
                out[f"{k}_lo"][i0 + j], out[f"{k}_hi"][i0 + j] = lo, hi
    return out


def _measure(fitter, spectra: np.ndarray, chunk: int = 5000) -> dict[str, np.ndarray]:
    parts = [fitter(spectra[i : i + chunk]) for i in range(0, len(spectra), chunk)]
    flux = {k: np.concatenate([p[k]["flux"] for p in parts]) for k in LINES}
    return {"Halpha": flux["Halpha"], "O3N2": true_o3n2(flux)}


def library_by_class(params, pool, wave, fitter, seed: int, n_library: int, snrs=LIBRARY_SNRS) -> dict[str, Any]:
    """H-alpha and O3N2 coverage per class and S/N of the library posterior (``n_library`` clean
    universe spectra, stream 7 of ``seed``) on the class grid's ``pool`` (clean (m, P), classes (m,),
    z (m,)) observed with sky noise (rng ``[seed, 7]``): per cell the coverage and the shares of
    truths below / above; per S/N the median ESS."""
    lib, cat = draw_clean(params.universe, params.preprocess, n_library, seed, stream=7, chunk=5000)
    values = _measure(fitter, lib)
    clean, classes, z = pool
    rng = np.random.default_rng([seed, 7])
    mix = cat["class"].astype(str).value_counts().to_dict()
    out: dict[str, Any] = {"n_library": int(n_library), "library_mix": mix, "bins": {}}
    for snr in snrs:
        obs = observe_normalised(clean, wave, z, np.full(len(clean), snr), "sky", rng)
        iv = library_intervals(obs["flux"], obs["ivar"], lib, values, scaled={"Halpha"})
        ref = _measure(fitter, obs["truth"])
        row: dict[str, Any] = {"ess_median": float(np.median(iv["ess"]))}
        for c in np.unique(classes):
            sel = classes == c
            cell = {}
            for k in values:
                r, lo, hi = ref[k][sel], iv[f"{k}_lo"][sel], iv[f"{k}_hi"][sel]
                ok = np.isfinite(r) & np.isfinite(lo)
                if not ok.any():  # no finite truth (O3N2 of galaxies without lines)
                    cell[k] = {"coverage": None, "below": None, "above": None, "n": 0}
                    continue
                inside = float(np.mean((r[ok] >= lo[ok]) & (r[ok] <= hi[ok])))
                cell[k] = {"coverage": inside, **miss_sides(r[ok], lo[ok], hi[ok]), "n": int(ok.sum())}
            row[str(c)] = cell
        out["bins"][f"sky/snr{snr:g}"] = row
    return out
