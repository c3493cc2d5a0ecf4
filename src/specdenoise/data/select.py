"""Sample selection in bins of H-alpha flux (paper section 2).

The parent pool is split into ``n_bins`` logarithmic bins of measured H-alpha flux between
10^``log_flux_min`` and 10^``log_flux_max`` (1e-17 erg/s/cm^2); ``per_bin`` galaxies are drawn
from each bin without replacement. A bin with fewer candidates keeps all of them and is
reported as short: it is never padded. A fixed test set, stratified by bin, is drawn with the
same seed; the rest is the training set (validation splits are drawn at training time).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from specdenoise.config import SelectConfig
from specdenoise.data.artefacts import CATALOGUE_COLUMNS, load_sample
from specdenoise.errors import DataError
from specdenoise.io import save_json, save_table

FLUX_COLUMN = "Halpha_flux_meas"


def bin_edges(cfg: SelectConfig) -> np.ndarray:
    """Edges of the H-alpha flux bins, log10(flux / 1e-17 erg/s/cm^2), shape (n_bins + 1,)."""
    return np.linspace(cfg.log_flux_min, cfg.log_flux_max, cfg.n_bins + 1)


def assign_bins(flux: np.ndarray, cfg: SelectConfig) -> np.ndarray:
    """Bin index of each flux (-1 outside the range or for non-positive flux)."""
    flux = np.asarray(flux, dtype=float)
    logf = np.full(flux.shape, -np.inf)
    np.log10(flux, out=logf, where=flux > 0)
    edges = bin_edges(cfg)
    idx = np.searchsorted(edges, logf, side="right") - 1
    idx[(logf < edges[0]) | (logf >= edges[-1]) | ~np.isfinite(logf)] = -1
    return idx


def select_sample(cat, cfg: SelectConfig) -> tuple[Any, dict[str, Any]]:
    """Select the binned sample and its train/test split.

    Parameters
    ----------
    cat : pandas.DataFrame
        The parent catalogue; needs ``id`` and ``Halpha_flux_meas`` (and ``class`` when
        ``cfg.classes`` restricts the classes).
    cfg : SelectConfig

    Returns
    -------
    sample : pandas.DataFrame
        Selected rows with added ``bin`` (int) and ``split`` ("train" / "test"), sorted by
        bin then id.
    report : dict
        Candidates, selected and shortfall per bin, class mix, split sizes.
    """
    for col in ("id", FLUX_COLUMN):
        if col not in cat.columns:
            raise DataError(f"catalogue: missing column '{col}'")
    pool = cat
    if cfg.classes:
        unknown = sorted(set(cfg.classes) - set(map(str, cat["class"].unique())))
        if unknown:
            raise DataError(f"select.classes: unknown class(es) {', '.join(unknown)}")
        pool = cat[cat["class"].astype(str).isin(cfg.classes)]
    bins = assign_bins(pool[FLUX_COLUMN].to_numpy(), cfg)
    rng = np.random.default_rng(cfg.seed)
    edges = bin_edges(cfg)
    chosen: list[np.ndarray] = []
    per_bin: list[dict[str, Any]] = []
    for b in range(cfg.n_bins):
        cand = np.flatnonzero(bins == b)
        take = min(len(cand), cfg.per_bin)
        pick = np.sort(rng.choice(cand, size=take, replace=False)) if take else cand[:0]
        chosen.append(pick)
        per_bin.append(
            {
                "bin": b,
                "log_flux_lo": float(edges[b]),
                "log_flux_hi": float(edges[b + 1]),
                "candidates": int(len(cand)),
                "selected": int(take),
                "shortfall": int(cfg.per_bin - take),
            }
        )
    rows = np.concatenate(chosen)
    if len(rows) == 0:
        raise DataError(f"catalogue: no galaxy has {FLUX_COLUMN} inside the selection bins")
    sample = pool.iloc[rows].copy()
    sample["bin"] = bins[rows].astype(np.int16)
    # fixed test set: the requested fraction of each bin, seeded
    frac = cfg.n_test / (cfg.n_bins * cfg.per_bin)
    split = np.array(["train"] * len(sample), dtype=object)
    offset = 0
    for pick in chosen:
        k = int(round(frac * len(pick)))
        if k:
            split[offset + rng.choice(len(pick), size=k, replace=False)] = "test"
        offset += len(pick)
    sample["split"] = split.astype(str)
    sample = sample.reset_index(drop=True)
    report = {
        "flux_column": FLUX_COLUMN,
        "n_pool": int(len(cat)),
        "n_selected": int(len(sample)),
        "n_train": int((sample["split"] == "train").sum()),
        "n_test": int((sample["split"] == "test").sum()),
        "short_bins": [p["bin"] for p in per_bin if p["shortfall"] > 0],
        "bins": per_bin,
    }
    if "class" in sample.columns:
        report["class_counts_sample"] = {str(k): int(v) for k, v in sample["class"].value_counts().items()}
        report["class_counts_pool"] = {str(k): int(v) for k, v in cat["class"].value_counts().items()}
    return sample, report


def run(
    cfg: SelectConfig, catalogue: Path, out: Path, report: Path, columns: tuple[str, ...] = CATALOGUE_COLUMNS
) -> dict[str, Any]:
    """The ``select`` stages (``data select``, ``mzr select``): the sample to ``out``, the report to ``report``.

    ``columns`` are the catalogue columns the caller needs beyond selection. Returns the report.
    """
    cat = load_sample(catalogue, tuple(dict.fromkeys((*CATALOGUE_COLUMNS, *columns))))
    sample, rep = select_sample(cat, cfg)
    save_json(report, rep)
    save_table(out, sample)
    return rep
