"""How far a table of interval coverages is from what a calibrated method gives by chance.

A cell's coverage is the share of its ``n`` spectra whose truth falls in the interval: for a
calibrated method a Binomial(n, p) count over n (spectra independent). So even a perfect posterior
misses a target band of +-0.05 around p = 0.68 in some cells: in 5.5 % of cells of 300 spectra and
in 19 % of cells of 150. A count of cells within the band means little without that expectation; the
chi^2 of the cells' deviations in binomial sds tells chance from a real miscalibration. (Cells
that share spectra, such as the lines of one S/N bin, are correlated: that leaves the chi^2's mean
at the number of cells but widens its spread, so a p-value near a threshold is only indicative.)
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np


def within_probability(n: int, p: float = 0.68, half: float = 0.05) -> float:
    """The probability that a calibrated method's coverage of ``n`` spectra (k / n with k ~
    Binomial(n, p)) falls within ``p +- half`` (bounds included, to 1e-9)."""
    from scipy.stats import binom  # scipy.stats takes ~0.6 s to import: only when needed

    if n < 1:
        raise ValueError(f"coverage cell of {n} spectra: needs at least 1")
    k = np.arange(n + 1)
    inside = np.abs(k / n - p) <= half + 1e-9
    return float(binom.pmf(k[inside], n, p).sum())


def coverage_vs_chance(cells: Iterable[tuple[float, int]], p: float = 0.68, half: float = 0.05) -> dict[str, Any]:
    """Cells ``(coverage, n)`` against chance.

    Returns
    -------
    dict
        ``n_cells``; ``within`` (cells with ``|coverage - p| <= half``) and ``expected_within``,
        ``expected_within_sd`` (the same count for a calibrated method: the sum of
        :func:`within_probability` over the cells, and its sd); ``chi2`` (the sum of
        ``(coverage - p)^2 / (p (1 - p) / n)``), ``p_value`` (of chi^2 with ``n_cells`` degrees of
        freedom: small where the deviations are more than chance); ``mean_coverage`` and ``mean_z``
        (the mean signed deviation in binomial sds: below 0 too narrow, above too wide).
    """
    from scipy.stats import chi2  # scipy.stats takes ~0.6 s to import: only when needed

    cells = list(cells)
    if not cells:
        raise ValueError("coverage_vs_chance: no cells")
    cov, n = np.array([c for c, _ in cells], dtype=float), np.array([m for _, m in cells], dtype=int)
    z = (cov - p) / np.sqrt(p * (1 - p) / n)
    probs = np.array([within_probability(int(m), p, half) for m in n])
    return {
        "n_cells": int(len(cov)),
        "within": int(np.sum(np.abs(cov - p) <= half + 1e-9)),
        "expected_within": float(probs.sum()),
        "expected_within_sd": float(np.sqrt(np.sum(probs * (1 - probs)))),
        "chi2": float(np.sum(z**2)),
        "p_value": float(chi2.sf(np.sum(z**2), len(cov))),
        "mean_coverage": float(cov.mean()),
        "mean_z": float(z.mean()),
    }


def miss_sides(ref: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> dict[str, float]:
    """Fractions of the truth ``ref`` (n,) below and above the intervals ``[lo, hi]`` (n,): a truth
    below means the estimate sits above the galaxy. Unequal sides: the intervals are pulled towards
    the population; equal sides with low coverage: they are too narrow."""
    return {"below": float(np.mean(ref < lo)), "above": float(np.mean(ref > hi))}
