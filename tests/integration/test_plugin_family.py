"""A model family defined outside the package (tests/models/toy_family.py) goes through the real
commands - train (with MLflow tracking) -> evaluate -> uncertainty -> leaderboard - and loads as a
de-noiser from its MLflow run, with no edit of specdenoise."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from models.toy_family import NAME, registered
from specdenoise.cli import app
from specdenoise.data.artefacts import NoisySet, Spectra
from specdenoise.io import save_table


@pytest.fixture
def project(tmp_path, monkeypatch, tiny_processed, tiny_noisy, tiny_sample):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    params = {
        "universe": {"n_galaxies": 3000, "seed": 11, "chunk_size": 50},
        "select": {"per_bin": 20, "n_test": 40, "seed": 5},
        "noise": {"n_realisations": 2, "seed": 9},
        "train": {"families": ["pca", NAME], "latent_dims": [2], "axis_dims": [2], "val_size": 40, NAME: {"width": 7}},
        "tracking": {"experiment": "toy", "registered_model": "toy-registered"},
        "uncertainty": {"n_samples": 5, "window": 8},
    }
    with registered():
        Path("params.yaml").write_text(yaml.safe_dump(params))
        Spectra.from_arrays(tiny_processed).save("spectra.npz")
        NoisySet.from_arrays(tiny_noisy).save("noisy.npz")
        sample, _ = tiny_sample
        save_table("sample.parquet", pd.DataFrame({"class": sample["class"].astype(str).to_numpy()}))
        yield tmp_path


def invoke(*args: str) -> str:
    res = CliRunner().invoke(app, list(args), catch_exceptions=False)
    assert res.exit_code == 0, res.output
    return res.output


def test_toy_family_trains_evaluates_calibrates_and_ranks(project):
    data = ("--spectra", "spectra.npz", "--noisy", "noisy.npz")
    invoke("train", "-m", "pca", "-d", "2", "--no-tracking", *data)
    out = invoke("train", "-m", NAME, "-d", "2", *data)
    assert f"train {NAME} 2-D: test loss" in out
    rec = json.loads(Path(f"models/{NAME}_2/record.json").read_text())
    assert rec["hyper"] == {"width": 7} and rec["run_id"]
    # the toy family de-noises better than the noise-added input it was given
    assert rec["metrics"]["gain"] > 1.0

    invoke(
        "evaluate",
        "--no-tracking",
        "--models-dir",
        "models",
        *data,
        "--sample",
        "sample.parquet",
        "--out",
        "reports/evaluation.json",
        "--out-md",
        "reports/evaluation.md",
        "--figures-dir",
        "figs",
    )
    ev = json.loads(Path("reports/evaluation.json").read_text())
    assert set(ev["models"]) == {"pca_2", f"{NAME}_2"}
    assert Path("figs/fig7_loss_vs_dim.png").exists()

    invoke(
        "uncertainty",
        "--no-tracking",
        "--models-dir",
        "models",
        *data,
        "--calibration-dir",
        "calibration",
        "--out",
        "reports/uncertainty.json",
        "--out-md",
        "reports/uncertainty.md",
    )
    unc = json.loads(Path("reports/uncertainty.json").read_text())["models"][f"{NAME}_2"]
    assert unc["method"] == "residual"
    assert 0.6 < unc["after"]["within_1sigma"] < 0.76

    board = invoke(
        "leaderboard",
        "--evaluation",
        "reports/evaluation.json",
        "--lines",
        "none.json",
        "--uncertainty",
        "reports/uncertainty.json",
        "--mzr",
        "none.json",
        "--out-md",
        "reports/leaderboard.md",
        "--out-html",
        "reports/leaderboard.html",
    )
    assert NAME.upper() in board and "PCA" in board

    # the MLflow run holds the whole model: it loads as a Denoiser by run id
    from specdenoise.survey.denoiser import Denoiser

    den = Denoiser.load(f"runs:/{rec['run_id']}")
    assert den.model.family == NAME and den.provenance["run_id"] == rec["run_id"]
    from specdenoise.models import load_model

    x = np.load("noisy.npz")["noisy"][0][:3]
    np.testing.assert_array_equal(den.model.denoise(x), load_model(f"models/{NAME}_2/model").denoise(x))
