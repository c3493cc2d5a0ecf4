"""What the de-noisers recover at every noise level of ``noise.levels`` other than the paper's.

The ``lines`` stage scores the paper-level models on the paper's noise-added test spectra
(:func:`~specdenoise.evaluation.line_recovery.stage_recovery`); this module repeats that at each
other level with the models of that level (``<family>_<dim>_n<level>_s0`` of the seed / level
axis: trained at the level, or for a noise-aware family the paper model told the level's noise),
on the level's own noise-added test spectra, so the slopes, tertile biases, information gain, MZR
slope and coverage are reported per level. Sets are keyed by the model's cell (``ae_6``) so a
level's table lines up with the paper level's.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from specdenoise.config import Params
from specdenoise.data.artefacts import load_noisy, noisy_level_path
from specdenoise.data.noise import added_ivar, at_level
from specdenoise.evaluation.line_recovery import stage_recovery
from specdenoise.models import store
from specdenoise.training.splits import training_data


def level_recovery(
    params: Params, pre: Any, sample: Any, fit, edges: np.ndarray, models_dir: Path, levels_dir: Path, level: float
) -> dict[str, Any] | None:
    """The ``recovery`` report (schema of :mod:`~specdenoise.evaluation.line_recovery`) at noise
    level ``level`` (sigma, normalised units): the level's noise-added test spectra and every
    first-seed model of that level in ``models_dir``; None when no model was trained at it."""
    found = [
        tm
        for tm in store.list_models(models_dir, params.lines.dims)
        if tm.noise_level is not None and float(tm.noise_level) == float(level) and tm.seed == 0
    ]
    if not found:
        return None
    p = params.model_copy(update={"noise": at_level(params.noise, level)})
    nz = load_noisy(noisy_level_path(levels_dir, level))
    _, test = training_data(pre, nz, p)
    ivar = added_ivar(nz)
    sets: dict[str, np.ndarray] = {"noisy": test["x"]}
    loaded = {}
    for tm in found:
        loaded[tm.cell] = tm.load()
        sets[tm.cell] = loaded[tm.cell].denoise_given(test["x"], ivar)
    norm = pre.norm[test["index"]]
    rec = stage_recovery(p, pre, nz, sample, fit, sets, loaded, test, norm, edges, ivar=ivar)
    rec["noise_sigma"] = float(level)
    return rec


def other_levels(
    params: Params, pre: Any, sample: Any, fit, edges: np.ndarray, models_dir: Path, levels_dir: Path | None
) -> dict[str, dict[str, Any]]:
    """:func:`level_recovery` for every level of ``noise.levels`` but ``noise.sigma``, keyed by
    ``f"{level:g}"``; empty without ``levels_dir``."""
    if levels_dir is None:
        return {}
    out = {}
    for level in params.noise.all_levels:
        if float(level) == float(params.noise.sigma):
            continue
        rec = level_recovery(params, pre, sample, fit, edges, models_dir, levels_dir, level)
        if rec is not None:
            out[f"{level:g}"] = rec
    return out
