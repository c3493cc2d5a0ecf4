"""The interim prior of the posterior MZR (:mod:`specdenoise.evaluation.mzr_posterior`): the
de-noiser's own prior density of 12+log(O/H), conditional on the H-alpha EW, that the re-weighting
divides out of the posterior draws.

The O/H of a spectrum is the fast fitter's O3N2 (PP04) metallicity; a spectrum whose four lines are
not all positive has none. The density is a Gaussian KDE of the O/H (and the log EW) of the prior's
own draws, with the bandwidth chosen by the held-out likelihood of those draws.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from specdenoise.evaluation.binned_kde import BinnedKDE
from specdenoise.evaluation.indices import ew_halpha
from specdenoise.evaluation.mzr_truth import MZR_LINES, oh_of_fluxes

log = logging.getLogger(__name__)

#: Spectra drawn from the de-noiser's prior per chunk (memory bound) of the interim O/H density
#: (``mzr.posterior_prior_draws`` in all)
PRIOR_CHUNK = 20_000
#: KDE bandwidths (x Scott's) among which the held-out likelihood of the prior's own draws chooses the
#: interim density's (:func:`heldout_loglik`; steps of sqrt 2)
CV_FACTORS = (0.25, 0.35, 0.5, 0.7, 1.0, 1.4, 2.0)
#: Share of the prior's draws held out to score each bandwidth
HOLDOUT = 0.2
#: Bandwidths (x the chosen one) of the interim: the first is reported, the others bound how much the
#: re-weighted MZR depends on the density model (a result is met only if it is met at every one)
KDE_BRACKET = (1.0, 0.5, 2.0)


@dataclass(frozen=True)
class Interim:
    """The interim prior's log densities of 12+log(O/H) (dex^-1; :func:`interim_densities`).

    ``densities``: ``{factor: (oh, c) -> (m,)}``, the bandwidth in Scott's units; the first is the chosen
    one. ``heldout``: ``{factor: mean log density of the held-out prior draws (nats)}`` over
    :data:`CV_FACTORS` (empty when the bandwidths were given). ``n_draws``: prior draws with an O/H.
    """

    densities: dict[float, Callable[[np.ndarray, np.ndarray], np.ndarray]]
    heldout: dict[float, float] = field(default_factory=dict)
    n_draws: int = 0

    @property
    def factor(self) -> float:
        """The chosen (reported) bandwidth, x Scott's."""
        return next(iter(self.densities))

    def summary(self) -> dict[str, Any]:
        """The chosen ``factor``, ``heldout_loglik`` per factor (keys as ``%g``) and ``n_prior_draws``."""
        return {
            "factor": self.factor,
            "heldout_loglik": {f"{f:g}": v for f, v in self.heldout.items()},
            "n_prior_draws": self.n_draws,
        }


def halpha_log_ew(edges: np.ndarray):
    """The interim prior's conditioning feature: a function ``(spectra (n, P), fits) -> (n,)`` giving
    log10 of the H-alpha emission EW (A; :func:`~specdenoise.evaluation.indices.ew_halpha` of the
    fitted flux over the side-band continuum on bins ``edges``), NaN where the fit failed or the EW
    is not positive. The EW follows the specific SFR, and the prior links O/H to it."""

    def covariate(spectra: np.ndarray, fits: dict[str, dict[str, np.ndarray]]) -> np.ndarray:
        ha = fits["Halpha"]
        flux = np.where(np.asarray(ha["ok"], bool), np.asarray(ha["flux"], float), np.nan)
        ew = ew_halpha(flux, spectra, edges)
        with np.errstate(invalid="ignore"):
            return np.log10(np.where(ew > 0, ew, np.nan))

    covariate.label = "log10 EW(H-alpha)"  # type: ignore[attr-defined]
    return covariate


def measure(fit, spectra: np.ndarray, covariate=None) -> tuple[np.ndarray, np.ndarray]:
    """O3N2 O/H (n,) of ``spectra`` (n, P) and the conditioning feature ``covariate(spectra, fits)``
    (n,; all NaN without one) from one run of the fitter."""
    fits = fit(np.asarray(spectra).astype(np.float32))
    oh = oh_of_fits(fits)
    return oh, (np.full(len(oh), np.nan) if covariate is None else covariate(np.asarray(spectra), fits))


def _kde_logpdf(points: np.ndarray, factor: float = 1.0):
    """log of a Gaussian KDE of ``points`` (d, N) with ``factor`` times Scott's bandwidth
    (:class:`~specdenoise.evaluation.binned_kde.BinnedKDE`), floored at 1e-3 of its peak, and that
    floor's log."""
    kde = BinnedKDE(points, factor)
    floor = 1e-3 * kde.peak
    return (lambda v: np.log(np.maximum(kde(v), floor))), np.log(floor)


def _conditional(oh: np.ndarray, c: np.ndarray, factor: float):
    """``(v, cv) -> log p(v | cv)`` from prior draws ``oh``, ``c`` (N,) by KDEs (module docstring)."""
    fin = np.isfinite(oh)
    marginal, floor = _kde_logpdf(oh[fin][None], factor)
    both = fin & np.isfinite(c)
    if both.sum() < 100:
        return lambda v, cv: marginal(np.asarray(v, float)[None])
    joint, _ = _kde_logpdf(np.vstack([oh[both], c[both]]), factor)
    feature, c_floor = _kde_logpdf(c[both][None], factor)

    def logpdf(v: np.ndarray, cv: np.ndarray) -> np.ndarray:
        v, cv = np.asarray(v, float), np.asarray(cv, float)
        out = marginal(v[None])
        ok = np.isfinite(cv)
        log_c = feature(cv[ok][None])  # the feature's density, evaluated once
        inside = log_c > c_floor
        ok[ok] = inside
        if ok.any():
            out[ok] = np.maximum(joint(np.vstack([v[ok], cv[ok]])) - log_c[inside], floor)
        return out

    return logpdf


def heldout_loglik(oh: np.ndarray, c: np.ndarray, factors, seed) -> dict[float, float]:
    """Mean log density (nats) of a held-out :data:`HOLDOUT` share of the prior's draws ``oh``, ``c`` (N,;
    those with a finite O/H, chosen with ``seed``) under the interim density (:func:`_conditional`,
    floors included) fitted to the others, per KDE bandwidth factor in ``factors`` (x Scott's): the
    conditional where the draw's ``c`` is finite and in range, the marginal elsewhere."""
    fin = np.flatnonzero(np.isfinite(oh))
    test = np.zeros(len(fin), bool)
    test[np.random.default_rng(seed).permutation(len(fin))[: int(round(HOLDOUT * len(fin)))]] = True
    tr, te = fin[~test], fin[test]
    return {float(f): float(np.mean(_conditional(oh[tr], c[tr], f)(oh[te], c[te]))) for f in factors}


def interim_densities(
    model: Any, fit, seed: int, n: int, covariate=None, factors=None, grid=CV_FACTORS, bracket=KDE_BRACKET
) -> Interim:
    """The interim prior's log density (dex^-1) of 12+log(O/H), a function of O/H values and the
    conditioning feature ``c`` (``covariate``'s value, :func:`halpha_log_ew`), from the fast fitter's
    O3N2 O/H of ``n`` spectra drawn from the model's prior (:meth:`sample_prior`, the chunk from draw
    ``i`` seeded ``[seed, i]``; draws whose four lines are not all positive have no O/H and are left
    out, as in the posterior). Where ``c`` is finite and within the prior's range (its KDE above 1e-3
    of its peak), the conditional ``p(oh, c) / p(c)`` of Gaussian KDEs; elsewhere, or without a
    covariate, the O/H marginal; each floored at 1e-3 of the marginal's peak.

    The bandwidth is the one of ``grid`` (x Scott's) whose density gives the held-out prior draws the
    highest likelihood (:func:`heldout_loglik`, split seeded ``[seed, n]``); Scott's rule over-smooths
    this conditional (2026-11-27: ~x0.35-0.5). The interim is built at that bandwidth times each of
    ``bracket`` (the first is reported, the others measure how much the result depends on the density
    model), or at ``factors`` (x Scott's) when given, with no selection."""
    chunks = range(0, n, PRIOR_CHUNK)
    parts = [measure(fit, model.sample_prior(min(PRIOR_CHUNK, n - i), [seed, i]), covariate) for i in chunks]
    oh, c = (np.concatenate([p[j] for p in parts]) for j in (0, 1))
    heldout: dict[float, float] = {}
    if factors is None:
        heldout = heldout_loglik(oh, c, grid, [seed, n])
        best = max(heldout, key=heldout.get)
        if best in (min(grid), max(grid)):
            log.warning(
                "mzr: the interim's held-out likelihood is highest at the edge of its grid, x%g of Scott's", best
            )
        factors = [best * b for b in bracket]
    dens = {float(f): _conditional(oh, c, f) for f in factors}
    return Interim(dens, heldout, int(np.isfinite(oh).sum()))


def oh_of_fits(fits: dict[str, dict[str, np.ndarray]]) -> np.ndarray:
    """O3N2 12+log(O/H) (n,) of the fast fitter's ``fits`` of :data:`MZR_LINES` (NaN unless all four fitted)."""
    return oh_of_fluxes(
        {k: np.where(np.asarray(fits[k]["ok"], bool), np.asarray(fits[k]["flux"], float), np.nan) for k in MZR_LINES}
    )
