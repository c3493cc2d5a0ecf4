"""Calibrating the posterior family's spread (:func:`calibrate`) and applying it (:func:`calibration_factor`).

On a validation split of fresh clean spectra observed with mixed
noise shapes and log-uniform S/N, the raw posterior's pixel z-scores |truth - mean| / sd give a
table of factors, one per cell of (spectrum features: amplitude S/N, noise heterogeneity,
emission-line power) x (pixel log10 S/N bin), each bringing its cell's 68.27 % quantile of |z| to
1, times a per-wavelength modulation within each (emission-line-power bin, pixel S/N bin); at
inference the factor is interpolated in the pixel's log S/N. Both the input scale and the unit
scale get a table. The OOD chi^2 threshold is the 99.5 % quantile of the validation spectra's best
``f = 0`` chi^2.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np

from specdenoise.models.posterior_fit import line_excess

CALIB_EDGES = np.arange(-1.5, 2.76, 0.25)  # log10 pixel S/N (open-ended at both ends)
#: the arrays a calibration sets (``calib_scale``: models calibrated before the spectrum features)
CALIB_KEYS = (
    "calib_log_snr",
    "calib_scale",
    "calib_table",
    "calib_table_unit",
    "calib_pixel",
    "calib_pixel_unit",
    "calib_edges",
    "calib_widths",
)


def pixel_log_snr(mean: np.ndarray, ivar: np.ndarray) -> np.ndarray:
    """log10 of each pixel's S/N, |posterior mean| sqrt(ivar), (n, P); masked pixels get -3."""
    with np.errstate(divide="ignore"):
        return np.maximum(np.log10(np.abs(mean) * np.sqrt(np.clip(ivar, 0, None))), -3.0)


def spectrum_features(mean: np.ndarray, ivar: np.ndarray) -> np.ndarray:
    """Per-spectrum calibration features (n, 3), all known at inference (input-scale ``mean``):

    0. log10 of the amplitude's S/N, ``|m|^2 / sd(|y|^2)`` over unmasked pixels with
       ``sd^2 = 2 sum var^2 + 4 sum m^2 var`` (how well the data fix the spectrum's norm: where they
       do not, the input-scale errors are dominated by the amplitude, coherent over all pixels);
    1. log10 of the noise's heterogeneity, mean / median of the unmasked pixels' variance (0 for
       white noise; large where a few pixels, sky lines or arm ends, carry most of the noise);
    2. log10 of the posterior mean's emission-line power, the positive excess over a 15-pixel running
       median squared and summed, over its total power (a stand-in for the galaxy's type, which the
       prior's spread depends on: absorption and quiescent spectra vs line-dominated ones).
    """
    good = ivar > 0
    var = np.where(good, 1.0 / np.where(good, ivar, 1.0), 0.0)
    m2 = np.where(good, mean, 0.0) ** 2
    sd = np.sqrt(2 * np.sum(var**2, axis=1) + 4 * np.sum(m2 * var, axis=1))
    amp = np.log10(np.clip(m2.sum(axis=1) / np.maximum(sd, 1e-300), 1e-2, 1e6))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        v = np.where(good, var, np.nan)
        het = np.nan_to_num(np.log10(np.nanmean(v, axis=1) / np.nanmedian(v, axis=1)), nan=0.0)
    excess = line_excess(mean)
    emis = np.log10(np.sum(excess**2, axis=1) / np.maximum(np.sum(mean**2, axis=1), 1e-300) + 1e-6)
    return np.stack([amp, het, emis], axis=1)


def _cells(feat: np.ndarray, edges: np.ndarray, widths: tuple[int, ...]) -> np.ndarray:
    """Flat spectrum-cell index (n,) of features ``feat`` (n, F) in the bins ``edges`` (F, E) (inner
    edges, NaN-padded; feature f has ``widths[f]`` bins)."""
    idx = np.zeros(len(feat), dtype=int)
    for f, nb in enumerate(widths):
        e = edges[f][: nb - 1]
        idx = idx * nb + np.searchsorted(e, feat[:, f], side="right")
    return idx


def calibration_factor(
    arrays: dict[str, np.ndarray], mean: np.ndarray, ivar: np.ndarray, scale: str = "input"
) -> np.ndarray:
    """Factor (n, P) multiplying the raw posterior spread at the input scale (``mean`` input-scale).

    With ``calib_table`` (a model calibrated by :func:`calibrate`): the spectrum's cell in the
    :func:`spectrum_features` bins picks a row of factors over the pixel log10 S/N bin centres
    ``calib_log_snr``, interpolated linearly in each pixel's S/N (constant beyond the end bins).
    ``scale="unit"``: the factors of the unit-norm estimate (``calib_table_unit``: the amplitude's
    error is not part of it), still looked up with the input-scale ``mean``. The row is then
    multiplied by ``calib_pixel`` (groups x n_bins, P): per (emission-line-power bin of the
    spectrum, pixel S/N bin, pixel), interpolated the same way (models calibrated before the groups
    carry one group). Models saved before the tables carry ``calib_scale`` (n_bins, P): per (pixel
    S/N bin, pixel), both scales."""
    x = arrays["calib_log_snr"]
    ls = pixel_log_snr(mean, ivar)
    if "calib_table" in arrays:
        widths = tuple(int(w) for w in arrays["calib_widths"])
        key = "calib_table_unit" if scale == "unit" and "calib_table_unit" in arrays else "calib_table"
        cell = _cells(spectrum_features(mean, ivar), arrays["calib_edges"], widths)
        rows = np.atleast_2d(arrays[key])[cell]
        if len(x) == 1:
            return np.broadcast_to(rows[:, :1], mean.shape).copy()
        j = np.clip(np.searchsorted(x, ls) - 1, 0, len(x) - 2)
        f = np.clip((ls - x[j]) / (x[j + 1] - x[j]), 0.0, 1.0)
        r = np.arange(len(mean))[:, None]
        out = rows[r, j] * (1 - f) + rows[r, j + 1] * f
        pix = arrays.get("calib_pixel_unit" if key == "calib_table_unit" else "calib_pixel")
        if pix is not None:  # per (group, pixel S/N bin, pixel): what the cells leave at fixed wavelengths
            cols = np.broadcast_to(np.arange(pix.shape[1]), ls.shape)
            row = j + (len(x) * (cell % widths[-1]))[:, None] if len(pix) > len(x) else j  # one group: older models
            out *= pix[row, cols] * (1 - f) + pix[row + 1, cols] * f
        return out
    tab = np.atleast_2d(arrays["calib_scale"])
    if len(x) == 1:
        return np.broadcast_to(tab[0], mean.shape).copy()
    j = np.clip(np.searchsorted(x, ls) - 1, 0, len(x) - 2)
    f = np.clip((ls - x[j]) / (x[j + 1] - x[j]), 0.0, 1.0)
    cols = np.broadcast_to(np.arange(tab.shape[1]), ls.shape)
    return tab[j, cols] * (1 - f) + tab[j + 1, cols] * f


def _quantile_table(zs, ls, cell, n_cells, edges, q=0.6827, min_n=300):
    """``q`` quantile of ``zs`` per (spectrum cell, pixel S/N bin); sparse cells fall back to the pixel
    bin's pooled value, sparse pixel bins to the cell's, then to 1."""
    nb = len(edges) - 1
    pb = np.clip(np.searchsorted(edges, ls, side="right") - 1, 0, nb - 1)
    cell_pix = np.broadcast_to(cell[:, None], zs.shape)
    table = np.full((n_cells, nb), np.nan)
    pooled = np.full(nb, np.nan)
    for j in range(nb):
        sel = pb == j
        if sel.sum() >= min_n:
            pooled[j] = np.quantile(zs[sel], q)
            zc, cc = zs[sel], cell_pix[sel]
            for c in np.unique(cc):
                zz = zc[cc == c]
                if len(zz) >= min_n:
                    table[c, j] = np.quantile(zz, q)
    table = np.where(np.isnan(table), pooled[None, :], table)
    return np.where(np.isnan(table), 1.0, table), pooled


def _pixel_modulation(zs, ls, edges, keep, q=0.6827, min_n=100) -> np.ndarray:
    """``q`` quantile of ``zs`` (already divided by the cell factor) per (kept pixel S/N bin, pixel);
    1 where a cell has fewer than ``min_n`` entries."""
    nb = len(edges) - 1
    pb = np.clip(np.searchsorted(edges, ls, side="right") - 1, 0, nb - 1)
    out = np.ones((nb, zs.shape[1]))
    for j in np.flatnonzero(keep):
        sel = pb == j
        with warnings.catch_warnings():  # all-NaN columns: pixels never in this bin
            warnings.simplefilter("ignore", RuntimeWarning)
            per = np.nanquantile(np.where(sel, zs, np.nan), q, axis=0)
        out[j] = np.where(sel.sum(axis=0) >= min_n, per, 1.0)
    return out[keep]


def calibrate(
    model: Any, obs: dict[str, np.ndarray], z: np.ndarray, n_amp: int = 8, n_het: int = 3, n_emis: int = 3
) -> dict[str, np.ndarray]:
    """Spread calibration, S/N and redshift ranges and the OOD threshold from validation ``obs``.

    The factor is the 68.27 % quantile of |truth - mean| / sd (raw posterior, input scale) per cell
    of (spectrum features x pixel S/N): the spectrum's amplitude S/N (``n_amp`` bins), noise
    heterogeneity (``n_het`` bins) and emission-line power (``n_emis`` bins; the spread's
    dependence on the galaxy's type) of :func:`spectrum_features`, quantile-spaced on the validation
    spectra, times each pixel's own log10 S/N (:data:`CALIB_EDGES`). Why the first two: binning by the
    pixel's S/N alone misses that at low spectrum S/N the errors are dominated by the amplitude
    (coherent over the spectrum; the raw posterior under-states it, most where the noise is
    heterogeneous), so the same pixel S/N needs a factor from 1 to 2.5 depending on the spectrum.
    What the cells leave at fixed wavelengths (emission lines) is a per-pixel modulation fitted
    separately for each emission-line-power bin: pooled over all spectra, the line pixels of weak-line
    (absorption, quiescent) galaxies got the strong emitters' factor (per class, line-pixel cells
    within 68 +- 3 %: 10 of 24 pooled, 15 of 24 per bin; ``bench posterior``).
    Nothing here reads the noise-shape or galaxy-class label: only ivar and the posterior mean."""
    mean, sd, chi2 = model.predict(obs["flux"], obs["ivar"], calibrated=False, scale="input")
    ls = pixel_log_snr(mean, obs["ivar"])
    feat = spectrum_features(mean, obs["ivar"])
    widths = (n_amp, n_het, n_emis)
    edges = np.full((len(widths), max(max(widths) - 1, 1)), np.nan)
    for f, nb in enumerate(widths):
        if nb > 1:
            edges[f, : nb - 1] = np.quantile(feat[:, f], np.linspace(0, 1, nb + 1)[1:-1])
    cell = _cells(feat, edges, widths)
    pix_edges = CALIB_EDGES.copy()
    pix_edges[0], pix_edges[-1] = -np.inf, np.inf
    pb = np.clip(np.searchsorted(pix_edges, ls, side="right") - 1, 0, len(pix_edges) - 2)
    mean_u, sd_u, _ = model.predict(obs["flux"], obs["ivar"], calibrated=False, scale="unit")
    fixed = model.hyper.get("fixed_scale")  # the unit-scale target: x0 = truth / s (unit norm unless s is fixed)
    truth_u = obs["truth"] / (float(fixed) if fixed else np.linalg.norm(obs["truth"], axis=1, keepdims=True))
    out = {}
    group = cell % n_emis  # the modulation per emission-line-power bin: lines differ by galaxy type
    for suffix, zs in (
        ("", np.abs(obs["truth"] - mean) / np.maximum(sd, 1e-12)),
        ("_unit", np.abs(truth_u - mean_u) / np.maximum(sd_u, 1e-12)),
    ):
        table, pooled = _quantile_table(zs, ls, cell, int(np.prod(widths)), pix_edges)
        keep = np.isfinite(pooled)
        centres = np.array([np.median(ls[pb == j]) for j in np.flatnonzero(keep)])
        out[f"calib_table{suffix}"] = table[:, keep]
        cells = {"calib_log_snr": centres, "calib_table": table[:, keep], "calib_edges": edges, "calib_widths": widths}
        zc = zs / calibration_factor(cells, mean, obs["ivar"])  # what the interpolated cell factors leave
        out[f"calib_pixel{suffix}"] = np.concatenate(
            [_pixel_modulation(zc[group == g], ls[group == g], pix_edges, keep) for g in range(n_emis)]
        )
    return {
        **out,
        "calib_log_snr": centres,
        "calib_edges": edges,
        "calib_widths": np.array(widths),
        "ood_chi2_max": np.array(float(np.quantile(chi2, 0.995))),
        "snr_range": np.array([0.2, 500.0]),
        "z_range": np.array([float(np.min(z)), float(np.max(z))]),
    }
