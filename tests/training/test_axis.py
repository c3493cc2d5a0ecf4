"""The seed / noise-level axis of one family and dimension: which models, where, trained on what."""

from __future__ import annotations

import json

import numpy as np

from conftest import ROOT
from specdenoise.config import load_params, parse_params
from specdenoise.data.artefacts import NoisySet, Spectra, noisy_level_path
from specdenoise.data.noise import add_noise, at_level
from specdenoise.models import store
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
