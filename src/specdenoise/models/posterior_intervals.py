"""Calibrating the 16-84 % intervals of quantities measured on posterior draws (line fluxes, O3N2).

The exact draws hold the truth 68 % of the time only where the prior is the population's; on the
universe the misfit has a sign per line (H-alpha intervals too narrow, [OIII] too wide: ``bench
posterior``). :func:`calibrate_intervals` measures each quantity on draws of validation spectra
and, per (quantity, emission-line-power tertile, continuum S/N bin), finds the factor by which the
intervals must be widened or narrowed about the draws' median so that 68 % of them hold the truth;
:func:`interval_factor` looks it up at inference (interpolated in log S/N between the bins'
centres) and :func:`scaled_interval` applies it. Both
features are the spectrum's own (:func:`interval_features`, from the input and the posterior
mean): no label of class or noise shape is used.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from specdenoise.models.posterior_calibrate import spectrum_features

#: inner edges (log10 continuum S/N per pixel) of the factor's S/N bins: between 0.5, 1, 3, 10, 30, 100
INTERVAL_SNR_EDGES = np.array([-0.15, 0.24, 0.74, 1.24, 1.74])
#: the arrays a calibration sets, at the input scale and (suffix ``_unit``) the unit scale
INTERVAL_KEYS = (
    "interval_names",
    "interval_edges",
    "interval_centres",
    "interval_emis_edges",
    "interval_table",
    "interval_table_unit",
)
#: emission-line-power groups (tertiles of the validation spectra) of the factors
N_EMIS = 3
#: the share of the truths a calibrated 16-84 % interval holds
TARGET = 0.68

#: measures quantities on spectra: (m, P) -> {name: (m,)} (e.g. line fluxes and O3N2; NaN where none)
Measure = Callable[[np.ndarray], dict[str, np.ndarray]]


def continuum_log_snr(flux: np.ndarray, ivar: np.ndarray) -> np.ndarray:
    """log10 continuum S/N per pixel (n,) of observed spectra: the median of the input ``flux`` (n, P)
    over the unmasked pixels (the noise is symmetric, so the median holds at S/N < 1), over the
    median of their sigma (``ivar``, same units). This is how the benchmark sets its S/N (a noise
    sigma = median flux / S/N); clipped to [1e-3, 1e5]."""
    good = ivar > 0
    sig = np.where(good, 1.0 / np.sqrt(np.where(good, ivar, 1.0)), np.nan)
    with np.errstate(all="ignore"):
        ratio = np.nanmedian(np.where(good, flux, np.nan), axis=1) / np.nanmedian(sig, axis=1)
    return np.log10(np.clip(np.nan_to_num(ratio, nan=1e-3), 1e-3, 1e5))


def weibull_interval(samples: np.ndarray, min_valid: float = 0.5) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """16 %, 50 % and 84 % points (n,) of ``samples`` (S, n): the Weibull ((S + 1) q order statistic)
    quantiles of the finite draws (a new draw falls in 16-84 % with probability 0.68 exactly); NaN
    where fewer than ``min_valid`` of the draws are finite."""
    ok = np.mean(np.isfinite(samples), axis=0) >= min_valid
    lo, med, hi = (np.full(samples.shape[1], np.nan) for _ in range(3))
    if ok.any():
        lo[ok], med[ok], hi[ok] = np.nanquantile(samples[:, ok], [0.16, 0.5, 0.84], axis=0, method="weibull")
    return lo, med, hi


def scaled_interval(
    samples: np.ndarray, factor: np.ndarray | float | None = None, min_valid: float = 0.5
) -> tuple[np.ndarray, np.ndarray]:
    """The draws' 16-84 % interval (n,) of :func:`weibull_interval`, each side's distance from the
    median multiplied by ``factor`` (n,) (None: the draws' own interval)."""
    lo, med, hi = weibull_interval(samples, min_valid)
    if factor is None:
        return lo, hi
    f = np.asarray(factor, dtype=float)
    return med - f * (med - lo), med + f * (hi - med)


def needed_factor(samples: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """The smallest factor (n,) by which :func:`scaled_interval` must scale the draws' interval to hold
    ``truth`` (n,): the truth's distance from the median over that side's half-width (0 at the
    median, 1 at the interval's end); inf where the draws give no interval, NaN where the truth is
    not finite."""
    lo, med, hi = weibull_interval(samples)
    with np.errstate(divide="ignore", invalid="ignore"):
        f = np.where(truth >= med, (truth - med) / (hi - med), (med - truth) / (med - lo))
    f = np.where(np.isnan(f) & np.isfinite(truth) & np.isfinite(med), 0.0, f)  # truth on a zero-width side
    f = np.where(np.isfinite(lo), f, np.inf)
    return np.where(np.isfinite(truth), f, np.nan)


def factor_table(
    needed: np.ndarray,
    log_snr: np.ndarray,
    edges: np.ndarray,
    group: np.ndarray | None = None,
    n_groups: int = 1,
    min_n: int = 50,
) -> np.ndarray:
    """Factors (n_groups, n_bins) bringing the share of ``needed`` (n,) at or below them to :data:`TARGET`
    per (``group`` (n,) in 0..n_groups-1, S/N bin of ``log_snr`` (n,) in the inner ``edges``): the
    inverted-CDF quantile, so that the share is at least 0.68. A cell with fewer than ``min_n``
    finite entries gets its S/N bin's factor over all groups, a sparse bin the pooled factor."""
    keep = ~np.isnan(needed)
    group = np.zeros(len(needed), dtype=int) if group is None else group

    def q(sel: np.ndarray, fallback: float) -> float:
        return float(np.quantile(needed[sel], TARGET, method="inverted_cdf")) if sel.sum() >= min_n else fallback

    pooled = q(keep, 1.0)
    b = np.digitize(log_snr, edges)
    out = np.empty((n_groups, len(edges) + 1))
    for j in range(out.shape[1]):
        per_bin = q(keep & (b == j), pooled)
        for g in range(n_groups):
            out[g, j] = q(keep & (b == j) & (group == g), per_bin)
    return np.where(np.isfinite(out), out, 1.0)


def bin_centres(log_snr: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """The median ``log_snr`` (n,) of each S/N bin of the inner ``edges`` (n_bins,): where
    :func:`interval_factor` places each bin's factor before interpolating between them. An empty
    bin gets its middle (an outer bin: its edge -+ half the neighbouring bin's width)."""
    b = np.digitize(log_snr, edges)
    step = float(np.median(np.diff(edges))) if len(edges) > 1 else 1.0
    mids = np.concatenate([[edges[0] - step / 2], (edges[1:] + edges[:-1]) / 2, [edges[-1] + step / 2]])
    return np.array([np.median(log_snr[b == j]) if np.any(b == j) else mids[j] for j in range(len(edges) + 1)])


def interval_features(
    model: Any, flux: np.ndarray, ivar: np.ndarray, mean: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """What the factors are looked up by, both known at inference (n,) each: the continuum S/N
    (:func:`continuum_log_snr`) and the emission-line power of the input-scale posterior mean
    (:func:`.posterior_calibrate.spectrum_features`, a stand-in for the galaxy's type: on the
    universe the draws' intervals are too narrow for emitters' lines and too wide for absorption
    and quiescent galaxies). ``mean``: that posterior mean (n, P), computed here when not given."""
    if mean is None:
        mean = model.predict(flux, ivar, calibrated=False, scale="input")[0]
    return continuum_log_snr(flux, ivar), spectrum_features(mean, ivar)[:, 2]


def calibrate_intervals(
    model: Any, obs: dict[str, np.ndarray], measure: Measure, n_draws: int, seed: int, chunk: int = 250
) -> dict[str, np.ndarray]:
    """The interval arrays (:data:`INTERVAL_KEYS`) from validation ``obs`` (``flux``, ``ivar``, ``truth``
    (n, P), input scale): every quantity ``measure`` gives is measured on ``n_draws`` exact draws of
    each spectrum and on its truth, at both scales (unit: the truth divided by its norm, or by the
    model's ``fixed_scale``), and :func:`factor_table` fits its factors per (emission-line-power
    tertile, continuum S/N bin) of :func:`interval_features`."""
    log_snr, emis = interval_features(model, obs["flux"], obs["ivar"])
    emis_edges = np.quantile(emis, np.arange(1, N_EMIS) / N_EMIS)
    group = np.digitize(emis, emis_edges)
    fixed = model.hyper.get("fixed_scale")
    norm = float(fixed) if fixed else np.linalg.norm(obs["truth"], axis=1, keepdims=True)
    out: dict[str, np.ndarray] = {}
    for scale, truth in (("input", obs["truth"]), ("unit", obs["truth"] / norm)):
        need: dict[str, list[np.ndarray]] = {}
        for c, start in enumerate(range(0, len(log_snr), chunk)):
            sl = slice(start, start + chunk)
            draws = model.sample(obs["flux"][sl], n_draws, seed=[seed, c], ivar=obs["ivar"][sl], scale=scale)
            s, m, p = draws.shape
            got, ref = measure(draws.reshape(s * m, p)), measure(truth[sl])
            for name, values in got.items():
                need.setdefault(name, []).append(needed_factor(np.asarray(values).reshape(s, m), ref[name]))
        names = sorted(need)
        tables = [factor_table(np.concatenate(need[k]), log_snr, INTERVAL_SNR_EDGES, group, N_EMIS) for k in names]
        out["interval_table" if scale == "input" else "interval_table_unit"] = np.stack(tables)
    edges = {"interval_edges": INTERVAL_SNR_EDGES.copy(), "interval_emis_edges": emis_edges}
    edges["interval_centres"] = bin_centres(log_snr, INTERVAL_SNR_EDGES)
    return {**out, **edges, "interval_names": np.array(names)}


def interval_factor(
    arrays: dict[str, np.ndarray], name: str, log_snr: np.ndarray, emis: np.ndarray, scale: str = "input"
) -> np.ndarray:
    """Factor (n,) for the intervals of quantity ``name`` at ``scale`` (input or unit), looked up by the
    :func:`interval_features` ``log_snr`` and ``emis`` (n,) each; 1 for a quantity or a model
    without a calibration. Within its emission-power group the factor is interpolated linearly in
    log S/N between the bins' factors placed at their ``interval_centres`` (constant beyond the
    outer ones); a model saved without centres gets its bin's factor."""
    names = [str(v) for v in arrays.get("interval_names", [])]
    if name not in names:
        return np.ones(len(log_snr))
    table = arrays["interval_table_unit" if scale == "unit" else "interval_table"][names.index(name)]
    group = np.digitize(emis, arrays["interval_emis_edges"])
    if "interval_centres" not in arrays:
        return table[group, np.digitize(log_snr, arrays["interval_edges"])]
    per_group = np.stack([np.interp(log_snr, arrays["interval_centres"], row) for row in table])
    return per_group[group, np.arange(len(log_snr))]
