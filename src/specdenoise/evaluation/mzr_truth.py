"""MZR statistics: the reference relation, the scatter about it, and the comparison with the right truth.

:func:`metallicities` (O3N2 metallicities, errors, measurable mask), :func:`curti` /
:func:`fit_reference` (the Curti et al. 2020 form), :func:`scatter_stats` (scatter
at fixed mass and its SFR dependence) and :func:`vs_true`: metallicities compared with O3N2 of
the TRUE line fluxes of the same galaxies.

The catalogue's 12 + log(O/H) is not what an O3N2 measurement estimates (in the universe they
differ by ~0.09 dex rms with slope ~0.7), so the reference for a metallicity measured from
spectra is O3N2, and 12 + log(O/H) from it (Pettini & Pagel 2004, paper eq. 6), computed from
the catalogue's true fluxes of [OIII] 5007, H-beta, [NII] 6583 and H-alpha.

:func:`vs_true` reports, for one spectrum set against that truth (``M`` as in
:func:`specdenoise.evaluation.recovery.recovery_metrics`, linear)::

    {"n": int,                        # galaxies with finite measured and true O3N2
     "o3n2": M,                       # slope (OLS, Theil-Sen), biases, spread ratio, gain of
                                      # measured vs true O3N2 (gain vs the mean true O3N2)
     "oh_fit": {"intercept", "oh_true", "log_mass", "log_sfr", "n"},
                                      # OLS of measured O/H on true O/H, log M* and log SFR: the
                                      # coefficient of true O/H at fixed mass and SFR (1: the
                                      # metallicity is measured; 0: it comes from mass and SFR)
     "oh_coverage": float,            # fraction of true O/H inside measured +- error (16-84 %)
     "oh_median_error": float}        # dex
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy.optimize import least_squares

from specdenoise.evaluation.recovery import MIN_POINTS, recovery_metrics
from specdenoise.evaluation.stats import spearman

LN10 = np.log(10.0)
MZR_LINES = ("Halpha", "Hbeta", "OIII_5007", "NII_6583")


def metallicities(fits: dict[str, dict[str, np.ndarray]], snr_min: float) -> dict[str, np.ndarray]:
    """O3N2 metallicities, their propagated errors and the measurable mask.

    Parameters
    ----------
    fits : dict
        ``{line: {"flux", "err", "ok"}}`` (n,) arrays for at least :data:`MZR_LINES`.
    snr_min : float
        H-alpha S/N threshold.

    Returns
    -------
    dict
        ``oh`` (n,) 12 + log(O/H), ``oh_err`` (n,) dex, ``snr_halpha`` (n,), ``measurable`` (n,) bool.
    """
    f = {k: np.asarray(fits[k]["flux"], dtype=float) for k in MZR_LINES}
    e = {k: np.asarray(fits[k]["err"], dtype=float) for k in MZR_LINES}
    ok = np.logical_and.reduce([np.asarray(fits[k]["ok"], bool) & (f[k] > 0) for k in MZR_LINES])
    oh = pp04_o3n2(o3n2(f["OIII_5007"], f["Hbeta"], f["NII_6583"], f["Halpha"]))
    with np.errstate(divide="ignore", invalid="ignore"):
        rel2 = sum((e[k] / f[k]) ** 2 for k in MZR_LINES)
        oh_err = 0.32 / LN10 * np.sqrt(rel2)
        snr = f["Halpha"] / e["Halpha"]
    meas = ok & np.isfinite(oh) & np.isfinite(oh_err) & (snr > snr_min)
    return {"oh": oh, "oh_err": oh_err, "snr_halpha": snr, "measurable": meas}


def o3n2(oiii_5007: np.ndarray, hbeta: np.ndarray, nii_6583: np.ndarray, halpha: np.ndarray) -> np.ndarray:
    """O3N2 = log10(([OIII] 5007 / H-beta) / ([NII] 6583 / H-alpha)); NaN where undefined."""
    with np.errstate(divide="ignore", invalid="ignore"):
        r = (np.asarray(oiii_5007, float) / np.asarray(hbeta, float)) / (
            np.asarray(nii_6583, float) / np.asarray(halpha, float)
        )
        return np.where(r > 0, np.log10(np.where(r > 0, r, 1.0)), np.nan)


def pp04_o3n2(o3n2_value: np.ndarray) -> np.ndarray:
    """12 + log(O/H) = 8.73 - 0.32 x O3N2 (Pettini & Pagel 2004; paper eq. 6)."""
    return 8.73 - 0.32 * np.asarray(o3n2_value, dtype=float)


def oh_of_fluxes(flux: dict[str, np.ndarray]) -> np.ndarray:
    """12 + log(O/H) (PP04 O3N2) of line fluxes ``{line: array}`` of :data:`MZR_LINES` (any common
    unit and shape); NaN wherever one of the four is not positive or not finite."""
    pos = {k: np.where(np.asarray(flux[k], dtype=float) > 0, flux[k], np.nan) for k in MZR_LINES}
    return pp04_o3n2(o3n2(pos["OIII_5007"], pos["Hbeta"], pos["NII_6583"], pos["Halpha"]))


def true_o3n2(true_flux: dict[str, np.ndarray]) -> np.ndarray:
    """O3N2 (n,) of the true fluxes ``{line: (n,)}`` of OIII_5007, Hbeta, NII_6583, Halpha."""
    return o3n2(true_flux["OIII_5007"], true_flux["Hbeta"], true_flux["NII_6583"], true_flux["Halpha"])


def oh_regression(oh: np.ndarray, oh_true: np.ndarray, log_mass: np.ndarray, log_sfr: np.ndarray) -> dict[str, float]:
    """OLS ``oh = a + b oh_true + c log_mass + d log_sfr`` over finite rows; NaN below
    :data:`~specdenoise.evaluation.recovery.MIN_POINTS` rows or for a rank-deficient design."""
    cols = np.column_stack([np.ones(len(oh)), oh_true, log_mass, log_sfr]).astype(float)
    ok = np.isfinite(oh) & np.all(np.isfinite(cols), axis=1)
    names = ("intercept", "oh_true", "log_mass", "log_sfr")
    if ok.sum() < MIN_POINTS or np.linalg.matrix_rank(cols[ok]) < cols.shape[1]:
        return {**{k: float("nan") for k in names}, "n": int(ok.sum())}
    coef = np.linalg.lstsq(cols[ok], np.asarray(oh, float)[ok], rcond=None)[0]
    return {**dict(zip(names, map(float, coef), strict=True)), "n": int(ok.sum())}


def vs_true(
    oh: np.ndarray,
    oh_err: np.ndarray,
    measurable: np.ndarray,
    o3n2_true: np.ndarray,
    log_mass: np.ndarray,
    log_sfr: np.ndarray,
) -> dict[str, Any]:
    """One set's metallicities (n,) against the O3N2 of the true fluxes (schema in the module docstring).

    Parameters
    ----------
    oh, oh_err : ndarray (n,)
        Measured 12 + log(O/H) and its 1-sigma error (dex).
    measurable : ndarray (n,) bool
        The set's measurable galaxies (the statistics use these only).
    o3n2_true : ndarray (n,)
        O3N2 of the true fluxes (:func:`true_o3n2`).
    log_mass, log_sfr : ndarray (n,)
        log M* / M_sun and log SFR / (M_sun/yr).
    """
    m = np.asarray(measurable, bool) & np.isfinite(oh) & np.isfinite(o3n2_true)
    oh_t = pp04_o3n2(o3n2_true)
    meas_o3n2 = (8.73 - np.asarray(oh, float)) / 0.32
    err = np.asarray(oh_err, float)
    inside = np.abs(np.asarray(oh, float) - oh_t) <= err
    return {
        "n": int(m.sum()),
        "o3n2": recovery_metrics(o3n2_true[m], meas_o3n2[m], log=False),
        "oh_fit": oh_regression(np.asarray(oh, float)[m], oh_t[m], np.asarray(log_mass)[m], np.asarray(log_sfr)[m]),
        "oh_coverage": float(inside[m].mean()) if m.any() else float("nan"),
        "oh_median_error": float(np.median(err[m])) if m.any() else float("nan"),
    }


def curti(log_mass: np.ndarray, z0: float, log_m0: float, gamma: float, beta: float) -> np.ndarray:
    """Curti et al. (2020) MZR form: Z0 - (gamma / beta) log10(1 + (M / M0)^-beta)."""
    return z0 - gamma / beta * np.log10(1.0 + 10.0 ** (-beta * (np.asarray(log_mass, float) - log_m0)))


def fit_reference(log_mass: np.ndarray, oh: np.ndarray) -> dict[str, float]:
    """Fit :func:`curti` to (log_mass, oh); robust (soft-L1) least squares."""
    x, y = np.asarray(log_mass, float), np.asarray(oh, float)
    p0 = np.array([np.percentile(y, 90), 10.0, 0.3, 1.2])
    res = least_squares(
        lambda p: curti(x, *p) - y,
        p0,
        loss="soft_l1",
        f_scale=0.1,
        bounds=([7.5, 9.0, 0.05, 0.3], [9.8, 11.5, 1.0, 5.0]),
    )
    return dict(zip(("z0", "log_m0", "gamma", "beta"), map(float, res.x), strict=True))


def sfr_offset(log_mass: np.ndarray, log_sfr: np.ndarray, n_bins: int) -> np.ndarray:
    """log SFR minus the median log SFR of the galaxy's mass bin (quantile bins)."""
    edges = np.quantile(log_mass, np.linspace(0, 1, n_bins + 1))
    idx = np.clip(np.searchsorted(edges, log_mass, side="right") - 1, 0, n_bins - 1)
    med = np.array([np.median(log_sfr[idx == b]) if np.any(idx == b) else np.nan for b in range(n_bins)])
    return log_sfr - med[idx]


def scatter_stats(
    log_mass: np.ndarray, oh: np.ndarray, log_sfr: np.ndarray, ref: dict[str, float], n_bins: int
) -> dict[str, float]:
    """Scatter about the reference relation and its SFR dependence at fixed mass."""
    if len(oh) < 5:
        return {
            "n": int(len(oh)),
            "scatter": float("nan"),
            "scatter_mad": float("nan"),
            "bias": float("nan"),
            "sfr_rho": float("nan"),
            "sfr_slope": float("nan"),
        }
    resid = oh - curti(log_mass, **ref)
    dsfr = sfr_offset(log_mass, log_sfr, max(2, min(n_bins, len(oh) // 10)))
    rho = spearman(resid, dsfr)
    slope = np.polyfit(dsfr, resid, 1)[0] if np.std(dsfr) > 0 else float("nan")
    return {
        "n": int(len(oh)),
        "scatter": float(np.std(resid)),
        "scatter_mad": float(1.4826 * np.median(np.abs(resid - np.median(resid)))),
        "bias": float(np.median(resid)),
        "sfr_rho": float(rho),
        "sfr_slope": float(slope),
    }
