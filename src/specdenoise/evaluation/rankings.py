"""Seed-robust rankings: cells pooled over training seeds, paired-bootstrap CIs and tie groups.

A *cell* is one family at one latent dimension and one noise level; its models differ only in
the training seed. A cell's loss is the mean over its seeds of the mean test loss (eq. 3), its
``sd`` the standard deviation over seeds (None with one seed). Two cells at the same level are
compared on the same test spectra: the paired bootstrap resamples the spectra (with the
seed-averaged per-spectrum losses) and gives a 95 % interval of the mean loss difference.

Ranks are tie groups: in order of loss, a cell starts a new group only when the paired CI of
its difference from the current group's leader excludes 0 AND the difference exceeds
``sd_factor`` x the seed sd (the larger of the two cells'). A cell trained with one seed takes
the largest seed sd measured for its family (any dimension or level); a family whose fit takes
no seed (PCA, Wiener) has sd 0.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np

from specdenoise.data.artefacts import level_name
from specdenoise.models import get_family
from specdenoise.models.store import TrainedModel

LOSS_KEYS = ("loss", "loss_truth", "input_loss", "input_loss_truth")


def build_cells(models: Iterable[TrainedModel], paper_sigma: float) -> list[dict[str, Any]]:
    """Pool the models of each (family, dim, level) over seeds.

    Returns
    -------
    list of dict
        One per cell: ``family``, ``latent_dim``, ``level`` (float), ``key`` (``<family>_<dim>``),
        ``seeds`` (per model: ``seed_index``, ``test_loss``, ``test_loss_truth``, ``run_id``,
        ``experiment_id``), ``n_seeds``, ``test_loss`` / ``test_loss_truth`` / ``input_loss`` (means
        over seeds), ``test_loss_sd`` / ``test_loss_truth_sd`` (None with one seed), and the
        seed-averaged per-spectrum arrays ``_loss``, ``_loss_truth`` (n_test,) and ``_index``.
    """
    groups: dict[tuple[str, int, float], list[TrainedModel]] = {}
    for tm in models:
        groups.setdefault((tm.family, tm.latent_dim, tm.level(paper_sigma)), []).append(tm)
    cells = []
    for (family, dim, level), tms in sorted(groups.items()):
        losses = [tm.test_losses() for tm in tms]
        index = losses[0]["index"]
        for tm, ls in zip(tms, losses, strict=True):
            if not np.array_equal(ls["index"], index):
                raise ValueError(f"{tm.root}: test spectra differ from those of {tms[0].root}")
        seeds = []
        for tm, ls in zip(tms, losses, strict=True):
            m = tm.metrics()
            seeds.append(
                {
                    "seed_index": tm.seed,
                    "test_loss": float(ls["loss"].mean()),
                    "test_loss_truth": float(ls["loss_truth"].mean()),
                    "run_id": m.get("run_id"),
                    "experiment_id": m.get("experiment_id"),
                }
            )
        cell = {"family": family, "latent_dim": dim, "level": level, "key": f"{family}_{dim}", "seeds": seeds}
        cell["n_seeds"] = len(seeds)
        for k in ("test_loss", "test_loss_truth"):
            vals = np.array([s[k] for s in seeds])
            cell[k] = float(vals.mean())
            cell[f"{k}_sd"] = float(vals.std(ddof=1)) if len(vals) > 1 else None
        cell["input_loss"] = float(losses[0]["input_loss"].mean())
        cell["input_loss_truth"] = float(losses[0]["input_loss_truth"].mean())
        cell["_loss"] = np.mean([ls["loss"] for ls in losses], axis=0)
        cell["_loss_truth"] = np.mean([ls["loss_truth"] for ls in losses], axis=0)
        cell["_index"] = index
        cells.append(cell)
    _fill_sd(cells)
    return cells


def _fill_sd(cells: list[dict[str, Any]]) -> None:
    """``sd_used``: the seed sd a cell's rank uses (its own; else its family's largest; 0 without a seed)."""
    fam_sd: dict[str, float] = {}
    for c in cells:
        if c["test_loss_sd"] is not None:
            fam_sd[c["family"]] = max(fam_sd.get(c["family"], 0.0), c["test_loss_sd"])
    for c in cells:
        if c["test_loss_sd"] is not None:
            c["sd_used"], c["sd_source"] = c["test_loss_sd"], "own seeds"
        elif not get_family(c["family"]).seeded:
            c["sd_used"], c["sd_source"] = 0.0, "deterministic fit"
        elif c["family"] in fam_sd:
            c["sd_used"], c["sd_source"] = fam_sd[c["family"]], "largest sd of the family"
        else:
            c["sd_used"], c["sd_source"] = None, "unknown (one seed)"


def bootstrap_indices(n: int, n_boot: int, seed: int) -> np.ndarray:
    """``(n_boot, n)`` resampled indices of the test spectra (seeded, shared by every comparison)."""
    return np.random.default_rng(seed).integers(0, n, size=(n_boot, n))


def paired_ci(a: np.ndarray, b: np.ndarray, idx: np.ndarray) -> tuple[float, float, float]:
    """Mean of ``a - b`` over paired spectra and its 95 % percentile-bootstrap interval."""
    d = np.asarray(a, dtype=float) - np.asarray(b, dtype=float)
    boots = d[idx].mean(axis=1)
    lo, hi = np.percentile(boots, [2.5, 97.5])
    return float(d.mean()), float(lo), float(hi)


def rank_level(cells: list[dict[str, Any]], idx: np.ndarray, sd_factor: float) -> list[dict[str, Any]]:
    """Tie-group ranks of the cells of one level (sorted by loss); sets ``rank``, ``tied``,
    ``diff_vs_leader`` and ``ci_vs_leader`` (95 %) on each cell and returns them in rank order."""
    ordered = sorted(cells, key=lambda c: c["test_loss"])
    leader = None
    for pos, c in enumerate(ordered, 1):
        if leader is None:
            leader, c["rank"] = c, pos
            c["diff_vs_leader"], c["ci_vs_leader"] = 0.0, [0.0, 0.0]
            continue
        diff, lo, hi = paired_ci(c["_loss"], leader["_loss"], idx)
        c["diff_vs_leader"], c["ci_vs_leader"] = diff, [lo, hi]
        sds = [s for s in (c["sd_used"], leader["sd_used"]) if s is not None]
        sd = max(sds) if len(sds) == 2 else None
        separated = (lo > 0 or hi < 0) and sd is not None and abs(diff) > sd_factor * sd
        if separated:
            leader, c["rank"] = c, pos
        else:
            c["rank"] = leader["rank"]
    for c in ordered:
        c["tied"] = sum(o["rank"] == c["rank"] for o in ordered) > 1
    return ordered


def rank_all(cells: list[dict[str, Any]], n_boot: int, seed: int, sd_factor: float) -> dict[str, list[str]]:
    """Rank the cells of every level; returns ``{level: [cell keys in rank order]}``."""
    out = {}
    for level in sorted({c["level"] for c in cells}):
        at = [c for c in cells if c["level"] == level]
        idx = bootstrap_indices(len(at[0]["_loss"]), n_boot, seed)
        out[level_name(level)] = [c["key"] for c in rank_level(at, idx, sd_factor)]
    return out


def per_class(cells: list[dict[str, Any]], classes: np.ndarray) -> dict[str, dict[str, dict[str, float]]]:
    """Mean seed-averaged test loss (against the observed target) per galaxy class.

    ``classes`` holds the class of every spectrum of the sample (indexed by the cells' ``_index``).
    Returns ``{level: {cell key: {class: loss}}}`` plus, per level, the test spectra per class
    under ``"n"``.
    """
    out: dict[str, dict[str, dict[str, float]]] = {}
    for c in cells:
        lv = out.setdefault(level_name(c["level"]), {})
        cl = np.asarray(classes)[c["_index"]]
        lv[c["key"]] = {k: float(c["_loss"][cl == k].mean()) for k in sorted(set(cl))}
        lv.setdefault("n", {k: int((cl == k).sum()) for k in sorted(set(cl))})
    return out


def public(cell: dict[str, Any]) -> dict[str, Any]:
    """A cell without its per-spectrum arrays (for JSON)."""
    return {k: v for k, v in cell.items() if not k.startswith("_")}
