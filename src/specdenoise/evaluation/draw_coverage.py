"""Line-flux and O/H interval coverage from posterior draws (families with
``calibrated_draws``, e.g. the posterior family).

A per-pixel sigma propagated through the line fitter as independent errors ignores that a
posterior's pixel errors are correlated (a line's pixels move together), which mis-states line
fluxes' intervals. Here every draw of the whole spectrum is fitted; a line's 16-84 % interval is
the pair of Weibull order statistics of its fluxes over the draws (with S draws the linear
quantiles would hold a new value with probability 0.68 (S - 1) / (S + 1) only), and so is the O/H
interval (PP04 O3N2 of each draw; a draw whose four lines are not all positive gives none, and a
galaxy needs half its draws with an O/H). Tables per input S/N bin as
:func:`~specdenoise.evaluation.line_recovery.coverage_tables`.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from specdenoise.data.preprocess import rest_grid
from specdenoise.evaluation.linefit import make_fast_fitter
from specdenoise.evaluation.mzr_truth import MZR_LINES, oh_of_fluxes, pp04_o3n2, true_o3n2
from specdenoise.evaluation.recovery import coverage_by_bin
from specdenoise.models.posterior_intervals import scaled_interval

#: spectra per chunk of draws (chunk x n_draws x n_pix float64 stays ~100 MB at 50 draws)
CHUNK = 256


def draw_fluxes(model: Any, x: np.ndarray, ivar: np.ndarray, fit, lines, n_draws: int, seed: int) -> dict:
    """Fluxes of ``lines`` fitted to ``n_draws`` unit-scale draws of each spectrum: line -> (S, n)
    (normalised units; NaN where the fit gave no finite flux). A negative flux is kept: the fitter
    flags it not ``ok``, but for a weak line it is part of the posterior, and dropping it would
    truncate the posterior and move the interval."""
    out: dict[str, list[np.ndarray]] = {ln: [] for ln in lines}
    ivar = np.broadcast_to(ivar, np.shape(x))
    for c, start in enumerate(range(0, len(x), CHUNK)):
        sl = slice(start, start + CHUNK)
        draws = model.sample(x[sl], n_draws, seed + c, ivar=ivar[sl], scale="unit")
        s, n, p = draws.shape
        fits = fit(draws.reshape(s * n, p).astype(np.float32))
        for ln in lines:
            f = np.asarray(fits[ln]["flux"], float)
            f = np.where(np.isfinite(f), f, np.nan)
            out[ln].append(f.reshape(s, n))
    return {ln: np.concatenate(v, axis=1) for ln, v in out.items()}


def draw_interval(
    samples: np.ndarray, min_valid: float = 0.5, factor: np.ndarray | float | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """16 / 84 % intervals (n,) of ``samples`` (S, n) (a quantity measured on S posterior draws): the
    Weibull ((S + 1) q order statistic) quantiles of the finite draws, which hold a new draw with
    probability 0.68 exactly (linear quantiles of 30 draws: 0.64); NaN where fewer than
    ``min_valid`` of the draws are finite. ``factor`` (n,): each side's distance from the draws'
    median scaled by it (a ``calibrated_intervals`` model's :meth:`interval_factors`)."""
    return scaled_interval(samples, factor, min_valid)


def interval_measure(fit, lines=MZR_LINES):
    """``spectra (m, P) -> {line: flux (m,), "O3N2": (m,)}`` with the fitter ``fit`` (NaN where it gave
    no finite flux): what a ``calibrated_intervals`` family calibrates its intervals on in training."""

    def measure(spectra: np.ndarray) -> dict[str, np.ndarray]:
        fits = fit(np.asarray(spectra, dtype=np.float64))
        out = {ln: np.asarray(fits[ln]["flux"], float) for ln in lines}
        out = {ln: np.where(np.isfinite(v), v, np.nan) for ln, v in out.items()}
        return {**out, "O3N2": true_o3n2(out)}

    return measure


def line_measure(params: Any, templates) -> Any:
    """:func:`interval_measure` with the pipeline's fast fitter (``params.lines``, the E-MILES
    ``templates`` file, the rest-frame grid of ``params.preprocess``): what ``specdenoise train
    --templates`` gives a ``calibrated_intervals`` family."""
    lc = params.lines
    return interval_measure(make_fast_fitter(templates, rest_grid(params.preprocess)[0], lc.sigma_kms, lc.n_components))


def draw_coverage_tables(
    model: Any,
    x: np.ndarray,
    ivar: np.ndarray,
    fit,
    true: dict[str, np.ndarray],
    norm: np.ndarray,
    snr: dict[str, np.ndarray],
    lines,
    edges,
    n_draws: int,
    seed: int,
    noise_free: dict[str, np.ndarray] | None = None,
) -> dict[str, Any]:
    """16-84 % coverage of line fluxes and O/H per input S/N bin, from fits to posterior draws.

    Parameters
    ----------
    model : DenoisingModel
        A ``calibrated_draws`` family.
    x : ndarray, shape (n, n_pix)
        Noise-added test spectra (normalised units).
    ivar : ndarray, shape (n_pix,) or (n, n_pix)
        Their inverse variance (normalised units).
    fit : callable
        The fast fitter ``(flux) -> {line: {"flux", "ok", ...}}`` (normalised units).
    true : dict line -> (n,)
        True fluxes (physical units); ``norm`` (n,) converts normalised fluxes to them.
    snr : dict line -> (n,)
        Input S/N of each line (the bins).
    lines, edges
        Lines to score and the S/N bin edges.
    n_draws, seed : int
    noise_free : dict line -> (n,), optional
        The same fitter's fluxes of the noise-free spectra (physical units, NaN where it failed):
        a second reference without the fitter's own error (which the draws do not carry).

    Returns
    -------
    dict
        ``lines``: line -> :func:`coverage_by_bin` list; ``oh``: the same for 12+log(O/H);
        ``n_draws``; with ``noise_free``, ``vs_noise_free`` holding ``lines`` and ``oh`` against it.
    """
    need = list(dict.fromkeys([*lines, *MZR_LINES]))
    fl = draw_fluxes(model, np.asarray(x, dtype=np.float64), ivar, fit, need, n_draws, seed)
    x = np.asarray(x, dtype=np.float64)
    iv = np.broadcast_to(ivar, x.shape)
    cal = getattr(model, "calibrated_intervals", False)  # else: the draws' own intervals
    names = [*lines, "O3N2"]
    fac = model.interval_factors(names, x, iv, "unit") if cal else dict.fromkeys(names)
    intervals = {ln: draw_interval(fl[ln] * norm[None], factor=fac[ln]) for ln in lines}
    oh_lo, oh_hi = draw_interval(oh_of_fluxes(fl), factor=fac["O3N2"])  # O/H is linear in O3N2 (PP04)
    snr_min = np.min(np.stack([snr[ln] for ln in MZR_LINES]), axis=0)

    def tables(ref: dict[str, np.ndarray]) -> dict[str, Any]:
        res = {"lines": {ln: coverage_by_bin(ref[ln], *intervals[ln], snr[ln], edges) for ln in lines}}
        res["oh"] = coverage_by_bin(pp04_o3n2(true_o3n2(ref)), oh_lo, oh_hi, snr_min, edges)
        return res

    out: dict[str, Any] = {**tables(true), "n_draws": int(n_draws)}
    if noise_free is not None:
        out["vs_noise_free"] = tables(noise_free)
    return out
