"""Recovery per noise level: the other levels' models are scored on their own level's test spectra."""

from __future__ import annotations

import numpy as np
import pytest

from specdenoise.data.artefacts import NoisySet, Spectra, noisy_level_path
from specdenoise.data.noise import add_noise, at_level
from specdenoise.data.preprocess import rest_grid
from specdenoise.evaluation.leaderboard import recovery_by_level
from specdenoise.evaluation.level_recovery import other_levels
from specdenoise.evaluation.linefit import make_fast_fitter
from specdenoise.evaluation.recovery_tables import line_metrics_by_level
from specdenoise.models import store
from specdenoise.training.train import train_one


@pytest.fixture(scope="module")
def levels(tmp_path_factory, tiny_params, tiny_sample, tiny_processed, tiny_noisy):
    tmp = tmp_path_factory.mktemp("levels")
    params = tiny_params.model_copy(
        update={
            "train": tiny_params.train.model_copy(update={"val_size": 20}),
            "noise": tiny_params.noise.model_copy(update={"levels": [0.005, 0.01]}),
        }
    )
    for level in (0.005, 0.01):
        low = at_level(params.noise, level)
        nz = add_noise(tiny_processed["flux"], tiny_processed["wave"], low, "l2")
        NoisySet.from_arrays(nz).save(noisy_level_path(tmp / "levels", level))
    pre = Spectra.from_arrays(tiny_processed)
    nz01 = NoisySet.load(noisy_level_path(tmp / "levels", 0.01))
    for fam in ("mean", "wiener"):  # trained at 0.01 only: 0.005 has no model and is left out
        out = tmp / "models" / store.axis_dir("", fam, 2) / store.key(fam, 2, 0.01, 0)
        train_one(fam, 2, params, pre, nz01, out, tracking=False, level=0.01)
    edges, _ = rest_grid(params.preprocess)
    fit = make_fast_fitter(None, edges, params.lines.sigma_kms)
    sample, _ = tiny_sample
    return params, other_levels(params, pre, sample, fit, edges, tmp / "models", tmp / "levels")


def test_each_level_scores_its_own_models_on_its_own_noise(levels):
    params, recs = levels
    assert list(recs) == ["0.01"]  # the paper level is the lines stage's own; 0.005 has no model
    rec = recs["0.01"]
    assert rec["noise_sigma"] == 0.01 and set(rec["models"]) == {"noisy", "mean_2", "wiener_2"}
    assert rec["baseline"] == "mean"  # the level's own prior-only model
    ha = {k: rec["models"][k]["lines"]["Halpha"]["vs_noise_free_fit"] for k in ("noisy", "wiener_2")}
    assert ha["wiener_2"]["info_gain"] > 0  # a real de-noiser beats the prior-only mean at S/N ~4
    assert rec["models"]["mean_2"]["lines"]["Halpha"]["vs_truth"]["info_gain"] == pytest.approx(0.0, abs=1e-12)
    assert np.isfinite(ha["noisy"]["slope_ols"])


def test_line_metrics_and_leaderboard_tables_carry_every_level(levels):
    params, recs = levels
    lines_json = {"recovery": recs["0.01"], "recovery_levels": recs}  # the paper slot reused: shape only
    lm = line_metrics_by_level(lines_json, 0.04)
    assert list(lm) == ["sigma_0.04", "sigma_0.01"] and "wiener_2" in lm["sigma_0.01"]
    tabs = recovery_by_level(lines_json, "0.04", {"0.01": {"snr_median": 3.63}})
    titles = [t for t, _, _ in tabs]
    assert any(t.endswith("[sigma = 0.04]") for t in titles)
    assert any(t.endswith("[sigma = 0.01, input S/N 3.63]") for t in titles)
