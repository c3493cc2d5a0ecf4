"""Per-class coverage when the prior is exact: how much of the per-class misses is the prior's
misfit of the universe, and how much any correct posterior would show (issue 15 item 2).

A Bayesian posterior's intervals hold the truth 68 % of the time on average over the population
its prior describes, and for every subset of spectra chosen by what the DATA show. A galaxy class
is not such a subset where the data cannot tell the classes apart: at low S/N a rare class whose
lines differ from those of the common galaxies with the same continuum (narrow-line AGN among
absorption galaxies) is pulled towards them, and its coverage falls below 68 % while the
population's holds. This module measures that on spectra drawn from the model's own prior, where
the posterior the model computes is the exact one:

1. the universe's class pool (:func:`~specdenoise.evaluation.posterior_bench.class_pool`) observed
   at S/N :data:`SHARE_SNR` gives each class's share of every prior component (the mean posterior
   component probability of its spectra; :func:`~specdenoise.models.posterior_components.component_probabilities`);
2. ``n`` spectra drawn from the prior, each labelled with its component
   (``sample_prior(..., labels=True)``), are observed at every
   S/N; H-alpha and O3N2 16-84 % intervals come from the exact posterior draws;
3. a class's exact-posterior coverage is its components' coverages weighted by its shares.

Where these numbers miss 0.68 as the universe's per-class cells do, the miss is what an exact
posterior gives the class, not a defect of the model.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from specdenoise.evaluation.draw_coverage import draw_interval
from specdenoise.evaluation.mzr_truth import MZR_LINES, true_o3n2
from specdenoise.models.posterior_components import component_probabilities
from specdenoise.models.posterior_noise import observe_normalised

#: continuum S/N per pixel at which the classes' component shares are measured (the data fix the class)
SHARE_SNR = 100.0
#: a component with fewer prior draws than this gets no coverage of its own (it drops out of the weights)
MIN_DRAWS = 20
QUANTITIES = ("Halpha", "O3N2")


def inside_intervals(fitter, truth: np.ndarray, draws: np.ndarray) -> dict[str, np.ndarray]:
    """Whether the truth's H-alpha flux and O3N2 (of the fitter on ``truth`` (n, P)) lie in the
    16-84 % intervals of ``draws`` (S, n, P): 1.0 / 0.0 per spectrum, NaN where either is undefined."""
    s, n, p = draws.shape
    ref = {k: v["flux"] for k, v in fitter(truth).items()}
    samp = {k: v["flux"].reshape(s, n) for k, v in fitter(draws.reshape(s * n, p)).items()}
    pairs = {
        "Halpha": (ref["Halpha"], samp["Halpha"]),
        "O3N2": (true_o3n2(ref), true_o3n2({k: samp[k] for k in MZR_LINES})),
    }
    out = {}
    for q, (r, fs) in pairs.items():
        lo, hi = draw_interval(fs)
        ok = np.isfinite(r) & np.isfinite(lo)
        out[q] = np.where(ok, ((r >= lo) & (r <= hi)).astype(float), np.nan)
    return out


def weighted_coverage(per_comp: np.ndarray, counts: np.ndarray, share: np.ndarray) -> float:
    """A class's coverage from its components' coverages ``per_comp`` (K,), their numbers of draws
    ``counts`` (K,) and the class's shares ``share`` (K,): components with fewer than
    :data:`MIN_DRAWS` draws or no defined coverage drop out and the shares are renormalised."""
    ok = (counts >= MIN_DRAWS) & np.isfinite(per_comp)
    w = share * ok
    return float(np.sum(w * np.where(ok, per_comp, 0.0)) / w.sum()) if w.sum() > 0 else float("nan")


def _component_means(v: np.ndarray, comp: np.ndarray, k: int) -> np.ndarray:
    """Mean (k,) of the finite entries of ``v`` (n,) per component label ``comp`` (n,); NaN where none."""
    ok = np.isfinite(v)
    n = np.bincount(comp[ok], minlength=k)
    total = np.bincount(comp[ok], weights=v[ok], minlength=k)
    return np.where(n > 0, total / np.maximum(n, 1), np.nan)


def class_shares(model, pool, wave, seed: int, kind: str = "sky") -> dict[str, np.ndarray]:
    """Each class's share (K,) of the prior components: the mean component probability of its spectra
    in ``pool`` (clean (m, P), classes (m,), z (m,)) observed at S/N :data:`SHARE_SNR`."""
    clean, classes, z = pool
    obs = observe_normalised(clean, wave, z, np.full(len(clean), SHARE_SNR), kind, np.random.default_rng([seed, 7]))
    resp = component_probabilities(model, obs["flux"], obs["ivar"])
    return {c: resp[classes == c].mean(0) for c in np.unique(classes)}


def exact_by_class(model, pool, wave, fitter, snrs, seed: int, n: int, n_samples: int, kind: str = "sky"):
    """Per class and S/N (``snrs``), the H-alpha and O3N2 coverage of the exact posterior (module
    docstring) for the classes of ``pool`` (:func:`~specdenoise.evaluation.posterior_bench.class_pool`),
    the population's (``all``) and each component's, on ``n`` prior draws at the pool's redshifts;
    JSON-ready."""
    shares = class_shares(model, pool, wave, seed, kind)
    spectra, comp = model.sample_prior(n, seed + 7, labels=True)
    spectra = spectra / np.linalg.norm(spectra, axis=1, keepdims=True)
    zz = np.random.default_rng([seed, 8]).choice(pool[2], n)
    counts = np.bincount(comp, minlength=len(model.arrays["mu"]))
    rng = np.random.default_rng([seed, 9])
    out: dict[str, Any] = {
        "noise": kind,
        "n": int(n),
        "share_snr": SHARE_SNR,
        "shares": {c: [round(float(v), 4) for v in s] for c, s in shares.items()},
        "component_draws": counts.tolist(),
        "bins": {},
    }
    for snr in snrs:
        o = observe_normalised(spectra, wave, zz, np.full(n, snr), kind, rng)
        draws = model.sample(o["flux"], n_samples, seed=int(snr * 10) + 13, ivar=o["ivar"])
        inside = inside_intervals(fitter, o["truth"], draws)
        per_comp = {q: _component_means(v, comp, len(counts)) for q, v in inside.items()}
        out["bins"][f"{kind}/snr{snr:g}"] = {
            "all": {q: float(np.nanmean(v)) for q, v in inside.items()},
            "classes": {
                c: {q: weighted_coverage(per_comp[q], counts, s) for q in QUANTITIES} for c, s in shares.items()
            },
            "per_component": {
                q: [None if not np.isfinite(v) else round(float(v), 3) for v in per_comp[q]] for q in QUANTITIES
            },
        }
    return out
