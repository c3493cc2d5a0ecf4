"""How much of a quantity a de-noiser recovers, and how much it takes from its training prior.

A posterior-mean estimator at low signal-to-noise returns values pulled towards the population
mean ("shrinkage", regression to the mean): the slope of recovered on true is below 1, faint
objects come out too bright and bright ones too faint, and the recovered spread is narrower
than the true spread. A scatter statistic alone (the paper's sigma_fill) does not show this.

:func:`recovery_metrics` returns, for true values ``x`` and recovered values ``y`` of the same
objects (both in log10 for fluxes, ``log=True``; as given for O3N2, 12 + log(O/H), D4000,
HdeltaA, EW):

``slope_ols``, ``intercept_ols``
    Ordinary least-squares fit ``y = a + b x``. 1 for a perfect recovery, 0 for a de-noiser
    that ignores its input.
``slope_robust``
    Theil-Sen slope (median of pairwise slopes; ``scipy.stats.theilslopes``), insensitive to
    the outliers of failed fits (computed on at most :data:`MAX_THEILSEN` evenly spaced points).
``bias_median``
    Median of ``y - x``.
``bias_tertiles``
    Median of ``y - x`` in each tertile of the true value (faint, middle, bright).
``spread_ratio``
    ``sd(y) / sd(x)``: below 1 when the recovered values are squeezed towards the mean.
``mse``, ``info_gain``
    Mean squared error, and ``1 - MSE(y) / MSE(baseline)`` where the baseline is a prior-only
    prediction (the prior-only de-noiser's output, or by default the mean of the true values):
    1 for a perfect recovery, 0 for no better than the prior, negative when worse.
``n``, ``frac_valid``
    Objects used and the fraction of those given that were usable (finite; positive when
    ``log=True``).

:func:`coverage_by_bin` gives the fraction of true values inside stated intervals (e.g. the
16-84 % interval) per bin of input signal-to-noise. Everything here is plain numpy (plus
``scipy.stats.theilslopes``).
"""

from __future__ import annotations

from typing import Any

import numpy as np

#: Largest number of points given to the Theil-Sen estimator (its cost grows as n^2).
MAX_THEILSEN = 3000
#: Fewest usable objects for any statistic (fewer: NaN).
MIN_POINTS = 5

_NAN_RESULT = ("slope_ols", "intercept_ols", "slope_robust", "bias_median", "spread_ratio", "mse", "info_gain")


def _as_values(a: np.ndarray | float, n: int, log: bool) -> np.ndarray:
    arr = np.broadcast_to(np.asarray(a, dtype=float), (n,))
    if not log:
        return arr.copy()
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(arr > 0, np.log10(np.where(arr > 0, arr, 1.0)), np.nan)


def theil_sen(x: np.ndarray, y: np.ndarray) -> float:
    """Theil-Sen slope of ``y`` on ``x`` (n,); at most :data:`MAX_THEILSEN` evenly spaced points
    of the sample sorted by ``x``. NaN when ``x`` is constant."""
    from scipy.stats import theilslopes  # scipy.stats imports slowly: only when needed

    x, y = np.asarray(x, float), np.asarray(y, float)
    if np.ptp(x) == 0:
        return float("nan")
    if len(x) > MAX_THEILSEN:
        order = np.argsort(x, kind="stable")
        keep = order[np.linspace(0, len(x) - 1, MAX_THEILSEN).astype(int)]
        x, y = x[keep], y[keep]
    return float(theilslopes(y, x).slope)


def recovery_metrics(
    true: np.ndarray,
    recovered: np.ndarray,
    baseline: np.ndarray | float | None = None,
    log: bool = True,
) -> dict[str, Any]:
    """Shrinkage and information-gain statistics of recovered against true values.

    Parameters
    ----------
    true, recovered : ndarray, shape (n,)
        The same quantity for the same n objects (e.g. line fluxes in 1e-17 erg/s/cm^2, or
        O3N2, D4000 ...). Non-finite values (and, with ``log``, non-positive ones) are left out.
    baseline : ndarray (n,) or float, optional
        A prior-only prediction of the same quantity (same units as ``true``); None: the mean
        of the usable true values (in log10 with ``log``).
    log : bool
        Compare log10 of the values (dex), for positive quantities such as fluxes.

    Returns
    -------
    dict
        See the module docstring; floats (NaN when fewer than :data:`MIN_POINTS` objects are
        usable or the true values do not vary), ``bias_tertiles`` a list of three floats.
    """
    x_all = np.asarray(true, dtype=float).ravel()
    n_all = len(x_all)
    x = _as_values(x_all, n_all, log)
    y = _as_values(recovered, n_all, log)
    ok = np.isfinite(x) & np.isfinite(y)
    b = None if baseline is None else _as_values(baseline, n_all, log)
    if b is not None:
        ok &= np.isfinite(b)
    out: dict[str, Any] = {"n": int(ok.sum()), "frac_valid": float(ok.mean()) if n_all else float("nan")}
    if ok.sum() < MIN_POINTS or np.ptp(x[ok]) == 0:
        out.update({k: float("nan") for k in _NAN_RESULT}, bias_tertiles=[float("nan")] * 3)
        return out
    x, y = x[ok], y[ok]
    b = np.full_like(x, x.mean()) if b is None else b[ok]
    slope, intercept = np.polyfit(x, y, 1)
    d = y - x
    t1, t2 = np.quantile(x, [1 / 3, 2 / 3])
    parts = (x <= t1, (x > t1) & (x <= t2), x > t2)
    mse, mse_b = float(np.mean(d**2)), float(np.mean((b - x) ** 2))
    out.update(
        slope_ols=float(slope),
        intercept_ols=float(intercept),
        slope_robust=theil_sen(x, y),
        bias_median=float(np.median(d)),
        bias_tertiles=[float(np.median(d[p])) if p.any() else float("nan") for p in parts],
        spread_ratio=float(np.std(y) / np.std(x)),
        mse=mse,
        info_gain=float(1.0 - mse / mse_b) if mse_b > 0 else float("nan"),
    )
    return out


def coverage_by_bin(
    true: np.ndarray, lo: np.ndarray, hi: np.ndarray, snr: np.ndarray, edges: tuple[float, ...] | np.ndarray
) -> list[dict[str, float]]:
    """Fraction of true values inside ``[lo, hi]`` per bin of input signal-to-noise.

    Parameters
    ----------
    true, lo, hi : ndarray, shape (n,)
        True values and the stated interval (e.g. the 16th and 84th percentiles), same units.
    snr : ndarray, shape (n,)
        Signal-to-noise of each object's input (e.g. the true line flux over its Cramer-Rao
        error at the input noise).
    edges : sequence of float
        Bin edges in S/N (ascending; use ``np.inf`` for an open last bin).

    Returns
    -------
    list of dict
        One per bin: ``snr_lo``, ``snr_hi`` (None for an infinite edge), ``n`` (objects with a finite interval),
        ``coverage`` (fraction inside; NaN for an empty bin), ``median_width`` (hi - lo).
    """
    true, lo, hi, snr = (np.asarray(a, dtype=float) for a in (true, lo, hi, snr))
    good = np.isfinite(true) & np.isfinite(lo) & np.isfinite(hi) & np.isfinite(snr)
    inside = good & (true >= lo) & (true <= hi)
    out = []
    for a, b in zip(edges[:-1], edges[1:], strict=True):
        m = good & (snr >= a) & (snr < b)
        out.append(
            {
                "snr_lo": float(a),
                "snr_hi": float(b) if np.isfinite(b) else None,  # None: open bin (JSON has no inf)
                "n": int(m.sum()),
                "coverage": float(inside[m].sum() / m.sum()) if m.any() else float("nan"),
                "median_width": float(np.median(hi[m] - lo[m])) if m.any() else float("nan"),
            }
        )
    return out
