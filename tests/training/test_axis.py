"""The seed / noise-level axis of one family and dimension: which models, where, trained on what."""

from __future__ import annotations

import json

import numpy as np

from conftest import ROOT
from specdenoise.config import load_params, parse_params
from specdenoise.data.artefacts import NoisySet, Spectra, noisy_level_path
from specdenoise.data.noise import add_noise, at_level
from specdenoise.models import store
from specdenoise.models.losses import pixel_weights, weighted_mse
from specdenoise.training.train import axis_jobs, run_axis, train_one


def test_default_and_paper_axis_jobs():
    p = parse_params({})
    assert axis_jobs("ae", p) == [(None, 1), (None, 2), (0.01, 0)]
    assert axis_jobs("pca", p) == [(0.01, 0)]  # no seed enters a PCA fit
    paper = load_params(ROOT / "profiles/paper.yaml")  # the profile's own keys (merged onto the defaults)
    merged = parse_params({"noise": {"levels": paper.noise.levels}, "train": {"seeds": 5, "level_seeds": 5}})
    assert len(axis_jobs("vae", merged)) == 4 + 3 * 5 and len(axis_jobs("wiener", merged)) == 3


def test_run_axis_writes_one_folder_of_models_at_their_levels(tmp_path, tiny_params, tiny_processed, tiny_noisy):
    params = tiny_params.model_copy(
        update={
            "train": tiny_params.train.model_copy(update={"val_size": 20, "axis_dims": [2], "latent_dims": [2]}),
            "noise": tiny_params.noise.model_copy(update={"levels": [0.01, 0.04]}),
        }
    )
    Spectra.from_arrays(tiny_processed).save(tmp_path / "spectra.npz")
    NoisySet.from_arrays(tiny_noisy).save(tmp_path / "noisy.npz")
    low = at_level(params.noise, 0.01)
    NoisySet.from_arrays(add_noise(tiny_processed["flux"], tiny_processed["wave"], low, "l2")).save(
        noisy_level_path(tmp_path / "levels", 0.01)
    )
    train_one("pca", 2, params, tiny_processed, NoisySet.from_arrays(tiny_noisy), tmp_path / "m/pca_2", tracking=False)
    out = store.axis_dir(tmp_path / "m", "pca", 2)
    recs = run_axis(
        "pca",
        2,
        params,
        tmp_path / "spectra.npz",
        tmp_path / "noisy.npz",
        tmp_path / "levels",
        out,
        tmp_path / "m/pca_2/record.json",
        tracking=False,
    )
    assert [(r["noise_level"], r["seed_index"]) for r in recs] == [(0.01, 0)]
    models = store.list_models(tmp_path / "m")
    assert [m.name for m in models] == ["pca_2", "pca_2_n0.01_s0"]
    noise = json.loads((out / "pca_2_n0.01_s0/model/preprocess.json").read_text())["noise"]
    assert noise["sigma"] == 0.01 and noise["seed"] == low.seed
    paper, lowm = (m.test_losses() for m in models)
    np.testing.assert_array_equal(paper["index"], lowm["index"])
    assert lowm["input_loss"].mean() < paper["input_loss"].mean() / 4  # 4x less noise: ~16x less input loss
    assert not list((tmp_path / "m").glob(".*"))  # no partial folder left


def test_noise_aware_family_is_trained_once_and_scored_at_every_level(
    tmp_path, tiny_params, tiny_processed, tiny_noisy
):
    """The posterior family is not re-trained per level: the paper model is scored with the level's ivar."""
    assert axis_jobs("posterior", parse_params({})) == [(None, 1), (None, 2), (0.01, 0)]
    small = {"n_prior": 600, "n_kmeans": 300, "n_components": 2, "n_calib": 0, "chunk": 300, "halpha_levels": ()}
    train = tiny_params.train.model_copy(update={"val_size": 20, "seeds": 1, "level_seeds": 3})
    params = parse_params(
        {**tiny_params.model_dump(), "train": {**train.model_dump(), "posterior": small}, "noise": {"levels": [0.01]}}
    )
    assert axis_jobs("posterior", params) == [(0.01, 0)]  # level_seeds do not apply: nothing is re-fitted
    Spectra.from_arrays(tiny_processed).save(tmp_path / "spectra.npz")
    NoisySet.from_arrays(tiny_noisy).save(tmp_path / "noisy.npz")
    low = at_level(params.noise, 0.01)
    low_set = add_noise(tiny_processed["flux"], tiny_processed["wave"], low, "l2")
    NoisySet.from_arrays(low_set).save(noisy_level_path(tmp_path / "levels", 0.01))
    paper_dir = tmp_path / "m/posterior_2"
    train_one("posterior", 2, params, tiny_processed, NoisySet.from_arrays(tiny_noisy), paper_dir, tracking=False)
    out = store.axis_dir(tmp_path / "m", "posterior", 2)
    (rec,) = run_axis(
        "posterior",
        2,
        params,
        tmp_path / "spectra.npz",
        tmp_path / "noisy.npz",
        tmp_path / "levels",
        out,
        paper_dir / "record.json",
        tracking=False,
    )
    assert rec["scored_from"] == "posterior_2" and rec["metrics"]["train_seconds"] == 0.0
    scored = out / "posterior_2_n0.01_s0"
    assert (scored / "model/posterior.npz").read_bytes() == (paper_dir / "model/posterior.npz").read_bytes()
    assert json.loads((scored / "model/preprocess.json").read_text())["noise"]["sigma"] == 0.01
    # scored with the level's noise: better than the same model told the paper level's noise
    model = store.TrainedModel.at(scored).load()
    losses = store.TrainedModel.at(scored).test_losses()
    idx = losses["index"]
    x, y, w = low_set["noisy"][0][idx], tiny_processed["flux"][idx], pixel_weights(tiny_processed["ivar"][idx], 2e-6)
    told_paper = weighted_mse(model.denoise(x), y, w).mean()
    np.testing.assert_allclose(weighted_mse(model.denoise_given(x, 1e4), y, w).mean(), losses["loss"].mean(), rtol=1e-5)
    assert losses["loss"].mean() < told_paper
