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

import logging
from typing import Any

import numpy as np
from scipy.optimize import minimize

from specdenoise.evaluation.stats import spearman

log = logging.getLogger(__name__)

#: Iterations allowed to the population fit (L-BFGS); a fit that stops short is logged as a warning.
FIT_MAXITER = 2000
#: Step (in each population parameter) of the central differences of the exact gradient that give the Hessian.
HESSIAN_STEP = 1e-4
#: The Hessian counts as singular where its smallest eigenvalue is at most this share of its largest.
HESSIAN_RCOND = 1e-10


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


def _sfr_linear(m: np.ndarray, ds: np.ndarray) -> np.ndarray:
    return ds[:, None]


def _sfr_quadratic_mass(m: np.ndarray, ds: np.ndarray) -> np.ndarray:
    return np.column_stack([ds, ds**2, m * ds])


def _sfr_spline_mass(m: np.ndarray, ds: np.ndarray) -> np.ndarray:
    knots = np.quantile(ds, SPLINE_QUANTILES)
    return np.column_stack([ds, *(np.maximum(ds - k, 0.0) for k in knots), m * ds])


#: Knots of the ``spline_mass`` form at these quantiles of the sample's SFR residuals.
SPLINE_QUANTILES = (0.2, 0.4, 0.6, 0.8)
#: Forms of the population's SFR term: name -> its design columns (n, k) from the mass offset ``m``
#: (log M - median) and the SFR residual ``ds`` (dex), both (n,). ``linear``: ``beta ds``;
#: ``quadratic_mass``: ``ds``, ``ds^2`` and ``m ds`` (an SFR slope that changes with mass);
#: ``spline_mass``: piecewise linear in ``ds`` with knots at :data:`SPLINE_QUANTILES`, plus ``m ds``.
#: Where the data are weak the re-weighted draws follow the population model, so its form sets the answer
#: there (galaxies far below the main sequence have weak lines). On the DESI-like sample (2026-11-27)
#: the true slope is -0.22 below 10^9.5 M_sun and +0.04 above 10^10.5; O/H turns over far below the MS.
SFR_FORMS = {"linear": _sfr_linear, "quadratic_mass": _sfr_quadratic_mass, "spline_mass": _sfr_spline_mass}


def _design(log_mass: np.ndarray, log_sfr: np.ndarray, deg: int, form: str | None) -> tuple[np.ndarray, np.ndarray]:
    """The population mean's design matrix (n, deg + 1 + k): ``(log M - median)^p``, p = deg..0, then
    the SFR term's columns of ``form`` (:data:`SFR_FORMS`; none for None), zero for a galaxy without
    an SFR residual (a galaxy without a mass: rows of zero mass offset, never used); and that residual
    (n,; NaN where missing)."""
    lm = np.asarray(log_mass, dtype=float)
    m = np.where(np.isfinite(lm), lm - np.nanmedian(lm), 0.0)
    ds = _residuals(lm, np.asarray(log_sfr, dtype=float), deg)
    cols = [m**p for p in range(deg, -1, -1)]
    if form is None:
        return np.column_stack(cols), ds
    has = np.isfinite(ds)
    part = _sfr_columns(form, m[has], ds[has])
    sfr = np.zeros((len(m), part.shape[1]))
    sfr[has] = part
    return np.column_stack(cols + [sfr]), ds


def _sfr_columns(form: str, m: np.ndarray, ds: np.ndarray) -> np.ndarray:
    if form not in SFR_FORMS:
        raise ValueError(f"population form: expected one of {', '.join(SFR_FORMS)}, got '{form}'")
    return SFR_FORMS[form](m, ds)


def _population(theta: np.ndarray, x: np.ndarray, ds: np.ndarray, deg: int, form: str | None, use) -> dict[str, Any]:
    """The population's parameters as reported: ``coef`` (mass polynomial, highest power first),
    ``sfr_coef`` (the form's SFR columns), ``beta_sfr`` (the least-squares slope of the fitted SFR
    term on the SFR residual over the galaxies ``use``: ``beta`` itself for ``linear``), ``sigma``."""
    k = deg + 1
    part = x[:, k:] @ theta[k:-1]
    u = np.asarray(use, bool) & np.isfinite(ds)
    beta = float(np.polyfit(ds[u], part[u], 1)[0]) if form is not None and u.sum() > 2 else 0.0
    return {
        "form": form,
        "coef": [float(c) for c in theta[:k]],
        "sfr_coef": [float(c) for c in theta[k:-1]],
        "beta_sfr": beta,
        "sigma": float(np.exp(theta[-1])),
    }


def population_ols(
    log_mass: np.ndarray, log_sfr: np.ndarray, oh: np.ndarray, deg: int = 2, form: str = "linear"
) -> dict[str, Any]:
    """The population model of :func:`hierarchical_mzr` (``form`` of the SFR term) fitted by least
    squares to one value per galaxy (the truth): :func:`_population`'s keys (``sigma``: rms residual,
    dex); the reference for a fitted population's parameters."""
    x, ds = _design(log_mass, log_sfr, deg, form)
    oh = np.asarray(oh, dtype=float)
    ok = np.isfinite(oh) & np.isfinite(log_mass) & np.isfinite(log_sfr)
    theta, *_ = np.linalg.lstsq(x[ok], oh[ok], rcond=None)
    sigma = np.std(oh[ok] - x[ok] @ theta)
    return _population(np.r_[theta, np.log(sigma)], x, ds, deg, form, ok)


def draw_bootstrap(
    log_mass: np.ndarray,
    log_sfr: np.ndarray,
    oh_samples: np.ndarray,
    log_interim: np.ndarray,
    n_real: int,
    seed,
    n_boot: int,
    deg: int = 2,
    form: str | None = "linear",
    start=None,
) -> dict[str, float]:
    """The Monte Carlo error of :func:`hierarchical_mzr` from its finite draws, which its own sd (the
    population's Laplace uncertainty) does not hold: each galaxy's S draws are resampled with replacement
    (with their interim densities), the population refitted and the sample's statistics re-taken, ``n_boot``
    times (seeded ``seed``). Returns ``scatter_sd_mc`` and ``rho_sd_mc`` (sd over the refits, ddof 1) and
    ``scatter_boot_mean`` and ``rho_boot_mean`` (their mean: less the value from all the draws, the
    bootstrap's estimate of the finite-draw bias). At the DESI-like S/N, 160 draws
    per galaxy, the re-weighted rho of eight draw seeds spread by 0.044 on one noise realisation
    (2026-11-27), as much as the Laplace sd (0.041). ``start``: where each refit starts, the full fit's
    parameters (:func:`hierarchical_mzr`'s ``population["theta"]``); None: fitted here first."""
    if n_boot < 2:
        raise ValueError(f"draw bootstrap: the spread of {n_boot} refit(s) is undefined; use at least 2")
    oh = np.atleast_2d(np.asarray(oh_samples, dtype=float))
    li = np.broadcast_to(np.asarray(log_interim, dtype=float), oh.shape)
    x, _ = _design(log_mass, log_sfr, deg, form)
    base = np.isfinite(log_mass)
    if start is None:
        theta = _Marginal(oh, (np.isfinite(oh) & np.isfinite(li)).any(0) & base, x, li).fit()
    else:
        theta = np.asarray(start, dtype=float)
    rng = np.random.default_rng(seed)
    got = []
    for _ in range(n_boot):
        idx = rng.integers(0, len(oh), oh.shape)
        ob, lb = np.take_along_axis(oh, idx, 0), np.take_along_axis(li, idx, 0)
        lik = _Marginal(ob, (np.isfinite(ob) & np.isfinite(lb)).any(0) & base, x, lb)
        got.append(mzr_from_samples(log_mass, log_sfr, _realisations(lik, lik.fit(theta), ob, n_real, rng), deg))
    out = {}
    for k in ("scatter", "rho"):
        v = np.array([g[k] for g in got])
        out[f"{k}_sd_mc"], out[f"{k}_boot_mean"] = float(np.std(v, ddof=1)), float(v.mean())
    return out


def _realisations(lik: _Marginal, theta: np.ndarray, oh: np.ndarray, n: int, rng) -> np.ndarray:
    """``n`` realisations of the sample (n, galaxies) resampled under the population ``theta``."""
    cw = np.cumsum(lik.weights(theta)[0], 0)
    return np.array([_resample(oh, cw, lik.use, rng) for _ in range(n)])


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
    form: str | None = "linear",
) -> dict[str, Any]:
    """The MZR from posterior draws with the interim prior replaced by a fitted population model.

    The draws of each galaxy come from its posterior under the de-noiser's prior (the *interim*
    prior ``pi_0``), which knows nothing of the galaxy's mass: a galaxy whose spectrum does not
    constrain its O/H gets draws from the whole population, which widens the scatter at fixed mass.
    Importance reweighting (Hogg, Myers & Bovy 2010) turns the draws into samples of
    ``p(y_i | O/H) ~ p(O/H | y_i) / pi_0(O/H | c)``; a population model
    ``O/H ~ N(poly_deg(log M) + g(log M, dSFR), sigma^2)`` (``dSFR``: the SFR residual at fixed mass,
    so the SFR dependence the interim prior also ignores is part of the model; ``g`` of ``form``,
    :data:`SFR_FORMS`) is fitted by maximising the marginal likelihood
    ``sum_i log mean_s N(oh_is; mu_i, sigma) / pi_0(oh_is | c_is)`` (L-BFGS with its exact gradient),
    and each galaxy's draws are resampled with those weights (its posterior under the fitted
    population). The MZR statistics of :func:`mzr_from_samples` are then taken over ``n_real`` such
    realisations; their sd over ``n_real`` more, each at Laplace draws (:meth:`_Marginal.covariance`).

    ``c`` is what the interim density is conditioned on, per draw (the caller's choice; none: its O/H
    marginal). Whatever link of O/H to the rest of the spectrum the interim prior has and ``c`` does
    not carry stays in the draws: a link to a feature that follows the SFR (the H-alpha EW) would
    then be counted twice, once by the draws and once by ``g`` (:mod:`specdenoise.evaluation.mzr_posterior`
    conditions on that EW). A galaxy without an SFR gets ``g = 0``.

    Parameters
    ----------
    log_mass, log_sfr : ndarray, shape (n,)
    oh_samples : ndarray, shape (S, n)
        Posterior draws of 12+log(O/H) (dex); NaN marks a failed draw.
    log_interim : ndarray, shape (S, n)
        log density (dex^-1) of the interim prior at each draw's O/H, ``log pi_0(oh_is | c_is)``
        (any value where the draw is NaN).
    n_real, seed : int
        Resampled realisations of the sample (twice: see above); the seed of the resampling.
    form : str or None
        The SFR term's form (:data:`SFR_FORMS`); None: a function of mass only (``beta_sfr`` 0).

    Returns
    -------
    dict
        :func:`mzr_from_samples`'s keys (``scatter_sd``, ``rho_sd``: with the population's uncertainty;
        ``scatter_sd_draws``, ``rho_sd_draws``: at the fitted population), plus ``population``
        (:func:`_population`: ``form``, ``coef``, ``sfr_coef``, ``beta_sfr`` (dex of O/H per dex of SFR
        residual) and ``beta_sfr_sd``, ``sigma`` (dex), ``loglik``: the maximised log marginal likelihood,
        up to a constant shared by every form fitted to the same draws; ``n_params``; ``laplace``: False
        where the Hessian was not positive definite and the sds are the draws' alone; ``theta``: the fitted
        ``coef``, ``sfr_coef`` and log sigma), ``ess_median`` (median draws' ESS per galaxy), ``n_galaxies``.
    """
    oh = np.atleast_2d(np.asarray(oh_samples, dtype=float))
    log_interim = np.broadcast_to(np.asarray(log_interim, dtype=float), oh.shape)
    use = (np.isfinite(oh) & np.isfinite(log_interim)).any(0) & np.isfinite(log_mass)
    x, ds = _design(log_mass, log_sfr, deg, form)
    lik = _Marginal(oh, use, x, log_interim)
    w, loglik = lik.weights(theta := lik.fit())
    rng = np.random.default_rng(seed)
    cw = np.cumsum(w, 0)
    res = mzr_from_samples(log_mass, log_sfr, np.array([_resample(oh, cw, use, rng) for _ in range(n_real)]), deg)
    pop = _population(theta, x, ds, deg, form, use)
    cov, spread = lik.covariance(theta), res
    if cov is not None:  # drawn after the realisations at the maximum, which stay as they were without it
        thetas = rng.multivariate_normal(theta, cov, n_real)
        real = [_resample(oh, np.cumsum(lik.weights(t)[0], 0), use, rng) for t in thetas]
        spread = mzr_from_samples(log_mass, log_sfr, np.array(real), deg)
        pop["beta_sfr_sd"] = float(np.std([_population(t, x, ds, deg, form, use)["beta_sfr"] for t in thetas]))
    pop |= {"loglik": loglik, "n_params": len(theta), "laplace": cov is not None, "theta": theta.tolist()}
    return {
        **res,
        **{f"{k}_draws": res[k] for k in ("scatter_sd", "rho_sd")},
        **{k: spread[k] for k in ("scatter_sd", "rho_sd")},
        "population": pop,
        "ess_median": float(np.median(1.0 / np.sum(w[:, use] ** 2, 0))),
        "n_galaxies": int(use.sum()),
    }


def _resample(oh: np.ndarray, cw: np.ndarray, use: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One realisation of the sample (n,): a draw per galaxy ``use`` picked with the weights whose
    cumulative sum over the draws is ``cw`` (S, n)."""
    idx = np.clip((cw < rng.random(oh.shape[1])).sum(0), 0, len(oh) - 1)
    return np.where(use, oh[idx, np.arange(oh.shape[1])], np.nan)


class _Marginal:
    """The Monte Carlo marginal likelihood of ``O/H ~ N(x theta, sigma^2)`` (``x``: :func:`_design`,
    (n, p)) from draws ``oh`` (S, n) of the galaxies ``use`` (n,), with the interim density at each
    draw ``log_interim`` (S, n) divided out: ``sum_i log sum_s`` of the terms. ``theta``: the p
    coefficients, then log sigma."""

    def __init__(self, oh: np.ndarray, use: np.ndarray, x: np.ndarray, log_interim: np.ndarray):
        self.shape, self.use = oh.shape, use
        self.valid = (np.isfinite(oh) & np.isfinite(log_interim))[:, use]
        self.o = np.where(self.valid, oh[:, use], 0.0)
        self.l0 = np.where(self.valid, log_interim[:, use], 0.0)
        self.xu = x[use]

    def terms(self, t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        r = (self.o - self.xu @ t[:-1]) / np.exp(t[-1])
        return np.where(self.valid, -0.5 * r * r - t[-1] - self.l0, -np.inf), r

    def objective(self, t: np.ndarray) -> tuple[float, np.ndarray]:
        """Minus the log marginal likelihood and its gradient (p + 1,)."""
        lt, r = self.terms(t)
        tot = _log_mix(lt)
        w = np.exp(lt - tot)  # 0 for failed draws
        grad_mu = (w * r).sum(0) / np.exp(t[-1])
        return -float(tot.sum()), -np.r_[self.xu.T @ grad_mu, (w * (r * r - 1.0)).sum()]

    def weights(self, t: np.ndarray) -> tuple[np.ndarray, float]:
        """Each draw's normalised weight (S, n) under the population ``t`` (0 for galaxies not used),
        and the log marginal likelihood."""
        lt = self.terms(t)[0]
        tot = _log_mix(lt)
        w = np.zeros(self.shape)
        w[:, self.use] = np.exp(lt - tot)
        return w, float(tot.sum())

    def fit(self, start: np.ndarray | None = None) -> np.ndarray:
        """The maximum (L-BFGS with the exact gradient, from ``start`` or else least squares on each
        galaxy's mean draw)."""
        if start is None:
            mean = np.nanmean(np.where(self.valid, self.o, np.nan), 0)
            start = np.r_[np.linalg.lstsq(self.xu, mean, rcond=None)[0], np.log(0.1)]
        fit = minimize(self.objective, start, jac=True, method="L-BFGS-B", options={"maxiter": FIT_MAXITER})
        if not fit.success:
            log.warning("population fit did not converge after %d iterations: %s", fit.nit, fit.message)
        return fit.x

    def covariance(self, t: np.ndarray) -> np.ndarray | None:
        """The Laplace approximation's covariance of the parameters (p + 1, p + 1): the inverse of the
        Hessian of minus the log marginal likelihood at ``t`` (central differences of the exact
        gradient, step :data:`HESSIAN_STEP`). None, with a warning, where the Hessian is not positive
        definite (its smallest eigenvalue at most :data:`HESSIAN_RCOND` of its largest: a direction the
        draws do not constrain). On the DESI-like sample at its own S/N (2026-11-27) the re-weighted rho
        was +-0.015 over realisations at the maximum, moved by 0.05 between draw seeds, and its sd with
        the Laplace draws of the parameters was 0.042-0.053."""
        p = len(t)
        hess = np.empty((p, p))
        for j in range(p):
            step = np.zeros(p)
            step[j] = HESSIAN_STEP
            hess[:, j] = (self.objective(t + step)[1] - self.objective(t - step)[1]) / (2 * HESSIAN_STEP)
        hess = 0.5 * (hess + hess.T)
        ev = np.linalg.eigvalsh(hess)
        if not ev.min() > HESSIAN_RCOND * ev.max():
            log.warning("population fit: the Hessian is not positive definite; the sd is from the draws alone")
            return None
        return np.linalg.inv(hess)
