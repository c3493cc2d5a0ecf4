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
