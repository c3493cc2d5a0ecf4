"""Population quantities from per-galaxy posterior samples (issue 15 item 4).

A point estimate per galaxy is a poor basis for a population's scatter: noisy estimates widen it,
posterior means (shrunk towards the prior) narrow it. Posterior *draws* do neither: by the law of
total variance the pooled draws of many galaxies have the population's distribution when the
prior matches it (``Var(theta) = Var(E[theta|y]) + E[Var(theta|y)]``), so each draw of the whole
sample is one plausible realisation of the true population. The MZR scatter at fixed mass is
computed on each realisation (residuals about a polynomial in mass fitted to it) and the SFR
dependence as the Spearman rho between the O/H residual and the SFR residual at fixed mass
(the distance from the main sequence); the reported value is the mean over realisations and its
spread the sd over them.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy.optimize import minimize

from specdenoise.evaluation.stats import spearman


def _residuals(x: np.ndarray, y: np.ndarray, deg: int) -> np.ndarray:
    ok = np.isfinite(x) & np.isfinite(y)
    coef = np.polyfit(x[ok], y[ok], deg)
    return np.where(ok, y - np.polyval(coef, x), np.nan)


def mzr_from_samples(log_mass: np.ndarray, log_sfr: np.ndarray, oh_samples: np.ndarray, deg: int = 2) -> dict[str, Any]:
    """MZR scatter at fixed mass and its SFR dependence from posterior draws of 12+log(O/H).

    Parameters
    ----------
    log_mass, log_sfr : ndarray, shape (n,)
        Stellar mass (log M_sun) and SFR (log M_sun/yr) of each galaxy, taken as known.
    oh_samples : ndarray, shape (S, n)
        Posterior draws of 12+log(O/H) (dex); NaN marks a failed draw.
    deg : int
        Degree of the polynomials in mass for the MZR and the main sequence.

    Returns
    -------
    dict
        ``scatter`` (dex) and ``rho`` (Spearman of the O/H residual with the SFR residual at
        fixed mass): means over the draws; ``scatter_sd``, ``rho_sd`` the sd over them;
        ``n_draws``.
    """
    oh_samples = np.atleast_2d(np.asarray(oh_samples, dtype=float))
    dsfr = _residuals(log_mass, log_sfr, deg)
    scat, rho = [], []
    for draw in oh_samples:
        r = _residuals(log_mass, draw, deg)
        ok = np.isfinite(r) & np.isfinite(dsfr)
        if ok.sum() < 10:
            continue
        scat.append(float(np.std(r[ok])))
        rho.append(float(spearman(r[ok], dsfr[ok])))
    if not scat:
        return {
            "scatter": float("nan"),
            "rho": float("nan"),
            "scatter_sd": float("nan"),
            "rho_sd": float("nan"),
            "n_draws": 0,
        }
    return {
        "scatter": float(np.mean(scat)),
        "rho": float(np.mean(rho)),
        "scatter_sd": float(np.std(scat)),
        "rho_sd": float(np.std(rho)),
        "n_draws": len(scat),
    }


def mzr_point(log_mass: np.ndarray, log_sfr: np.ndarray, oh: np.ndarray, deg: int = 2) -> dict[str, float]:
    """The same statistics from one value per galaxy (the truth, or a point estimate)."""
    res = mzr_from_samples(log_mass, log_sfr, np.asarray(oh, dtype=float)[None], deg)
    return {"scatter": res["scatter"], "rho": res["rho"]}


def population_ols(log_mass: np.ndarray, log_sfr: np.ndarray, oh: np.ndarray, deg: int = 2) -> dict[str, Any]:
    """The population model of :func:`hierarchical_mzr` fitted by least squares to one value per
    galaxy (the truth): ``coef`` (polynomial in ``log M - median``, highest power first), ``beta_sfr``
    (dex per dex of SFR residual) and ``sigma`` (rms residual, dex); the reference for a fitted
    population's parameters."""
    dsfr = _residuals(log_mass, log_sfr, deg)
    oh = np.asarray(oh, dtype=float)
    ok = np.isfinite(oh) & np.isfinite(dsfr) & np.isfinite(log_mass)
    mc = np.asarray(log_mass, dtype=float) - np.nanmedian(log_mass)
    a = np.column_stack([mc[ok] ** p for p in range(deg, -1, -1)] + [dsfr[ok]])
    theta, *_ = np.linalg.lstsq(a, oh[ok], rcond=None)
    return {
        "coef": [float(c) for c in theta[:-1]],
        "beta_sfr": float(theta[-1]),
        "sigma": float(np.std(oh[ok] - a @ theta)),
    }


def _log_mix(logp: np.ndarray) -> np.ndarray:
    """log of the sum over axis 0 of exp(logp), -inf where every entry is -inf."""
    m = logp.max(0)
    safe = np.where(np.isfinite(m), m, 0.0)
    with np.errstate(divide="ignore"):  # log(0) of an all -inf column, replaced below
        total = np.log(np.exp(logp - safe).sum(0))
    return np.where(np.isfinite(m), safe + total, -np.inf)


def hierarchical_mzr(
    log_mass: np.ndarray,
    log_sfr: np.ndarray,
    oh_samples: np.ndarray,
    log_interim: np.ndarray,
    n_real: int,
    seed: int,
    deg: int = 2,
    sfr_term: bool = True,
) -> dict[str, Any]:
    """The MZR from posterior draws with the interim prior replaced by a fitted population model.

    The draws of each galaxy come from its posterior under the de-noiser's prior (the *interim*
    prior ``pi_0``), which knows nothing of the galaxy's mass: a galaxy whose spectrum does not
    constrain its O/H gets draws from the whole population, which widens the scatter at fixed mass.
    Importance reweighting (Hogg, Myers & Bovy 2010) turns the draws into samples of
    ``p(y_i | O/H) ~ p(O/H | y_i) / pi_0(O/H | c)``; a population model
    ``O/H ~ N(poly_deg(log M) + beta dSFR, sigma^2)`` (``dSFR``: the SFR residual at fixed mass, so
    the SFR dependence the interim prior also ignores is part of the model) is fitted by maximising
    the marginal likelihood ``sum_i log mean_s N(oh_is; mu_i, sigma) / pi_0(oh_is | c_is)``, and each
    galaxy's draws are resampled with those weights (its posterior under the fitted population). The
    MZR statistics of :func:`mzr_from_samples` are then taken over ``n_real`` resampled realisations.

    ``c`` is what the interim density is conditioned on, per draw (the caller's choice; none: its O/H
    marginal). Whatever link of O/H to the rest of the spectrum the interim prior has and ``c`` does
    not carry stays in the draws: a link to a feature that follows the SFR (the H-alpha EW) would
    then be counted twice, once by the draws and once by ``beta`` (:mod:`specdenoise.evaluation.mzr_posterior`
    conditions on that EW). The population is Gaussian about a polynomial in mass plus a linear term
    in the SFR residual (a galaxy without an SFR gets ``dSFR = 0``).

    Parameters
    ----------
    log_mass, log_sfr : ndarray, shape (n,)
    oh_samples : ndarray, shape (S, n)
        Posterior draws of 12+log(O/H) (dex); NaN marks a failed draw.
    log_interim : ndarray, shape (S, n)
        log density (dex^-1) of the interim prior at each draw's O/H, ``log pi_0(oh_is | c_is)``
        (any value where the draw is NaN).
    n_real : int
        Resampled realisations of the sample.
    seed : int
        Seed of the resampling.
    sfr_term : bool
        Include ``beta dSFR`` in the population model (False: a function of mass only, ``beta_sfr`` 0).

    Returns
    -------
    dict
        :func:`mzr_from_samples`'s keys, plus ``population`` (``coef``: polynomial coefficients in
        ``log M - median``, highest power first; ``beta_sfr``: dex of O/H per dex of SFR residual;
        ``sigma``: its scatter, dex), ``ess_median`` (median
        effective number of draws per galaxy) and ``n_galaxies``.
    """
    oh = np.atleast_2d(np.asarray(oh_samples, dtype=float))
    log_interim = np.broadcast_to(np.asarray(log_interim, dtype=float), oh.shape)
    use = (np.isfinite(oh) & np.isfinite(log_interim)).any(0) & np.isfinite(log_mass)
    dsfr = np.nan_to_num(_residuals(log_mass, log_sfr, deg)) if sfr_term else None
    theta, w = _fit_population(oh, use, log_mass, dsfr, log_interim, deg)
    rng = np.random.default_rng(seed)
    cw = np.cumsum(w, 0)
    cols = np.arange(oh.shape[1])
    real = []
    for _ in range(n_real):
        idx = np.clip((cw < rng.random(oh.shape[1])).sum(0), 0, len(oh) - 1)
        real.append(np.where(use, oh[idx, cols], np.nan))
    res = mzr_from_samples(log_mass, log_sfr, np.array(real), deg)
    ess = 1.0 / np.sum(w[:, use] ** 2, 0)
    return {
        **res,
        "population": {
            "coef": [float(c) for c in theta[:-2]],
            "beta_sfr": float(theta[-2]),
            "sigma": float(np.exp(theta[-1])),
        },
        "ess_median": float(np.median(ess)),
        "n_galaxies": int(use.sum()),
    }


def _fit_population(oh, use, log_mass, dsfr, log_interim, deg):
    """Maximum marginal likelihood of ``O/H ~ N(poly_deg(log M - median) + beta dSFR, sigma^2)`` from
    draws ``oh`` (S, n) of the galaxies ``use`` (n,) with the interim density at each draw
    ``log_interim`` (S, n) divided out (``dsfr`` None: beta held at 0). Returns ``theta``
    (coefficients, beta, log sigma) and each draw's normalised weight (S, n) under the fitted
    population (0 for galaxies not used)."""
    valid = np.isfinite(oh) & np.isfinite(log_interim)
    safe = np.where(valid, oh, 0.0)
    log_pi0 = np.where(valid, log_interim, 0.0)
    mc = np.asarray(log_mass, dtype=float) - np.nanmedian(log_mass)
    shift = np.zeros(len(mc)) if dsfr is None else dsfr

    def log_terms(theta: np.ndarray) -> np.ndarray:
        mu, sig = np.polyval(theta[:-2], mc) + theta[-2] * shift, np.exp(theta[-1])
        lp = -0.5 * ((safe - mu) / sig) ** 2 - np.log(sig) - log_pi0
        return np.where(valid, lp, -np.inf)

    def full(t: np.ndarray) -> np.ndarray:  # the free parameters -> theta (beta 0 without an SFR term)
        return t if dsfr is not None else np.insert(t, len(t) - 1, 0.0)

    start = np.r_[np.polyfit(mc[use], np.nanmean(oh[:, use], 0), deg), 0.0, np.log(0.1)]
    if dsfr is None:
        start = np.delete(start, -2)
    fit = minimize(
        lambda t: -_log_mix(log_terms(full(t)))[use].sum(),
        start,
        method="Nelder-Mead",
        options={"maxiter": 4000, "xatol": 1e-6, "fatol": 1e-6},
    )
    theta = full(fit.x)
    lt = log_terms(theta)[:, use]
    w = np.zeros(oh.shape)
    w[:, use] = np.exp(lt - _log_mix(lt))
    return theta, w
