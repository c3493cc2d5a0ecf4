"""A trained model records the noise it was trained on (``preprocess.json``), and the de-noiser
reads it back; its posterior settings come from the ``uncertainty`` section."""

from __future__ import annotations

import json

import pytest

from conftest import desi_set
from specdenoise.data.artefacts import NoisySet
from specdenoise.survey.denoiser import Denoiser
from specdenoise.training.train import train_one


@pytest.fixture
def params(tiny_params):
    return tiny_params.model_copy(update={"train": tiny_params.train.model_copy(update={"val_size": 20})})


def test_gaussian_and_desi_noise_are_recorded_as_trained(tmp_path, params, tiny_processed, tiny_noisy):
    train_one("pca", 2, params, tiny_processed, NoisySet.from_arrays(tiny_noisy), tmp_path / "main", tracking=False)
    train_one("pca", 2, params, tiny_processed, desi_set(tiny_processed, tiny_noisy), tmp_path / "desi", tracking=False)
    main = json.loads((tmp_path / "main/model/preprocess.json").read_text())["noise"]
    desi = json.loads((tmp_path / "desi/model/preprocess.json").read_text())["noise"]
    assert main == params.noise.model_dump()
    assert desi["model"] == "desi" and desi["amplitude"] == pytest.approx(2.33)
    assert {k: desi[k] for k in ("z", "envelope", "seed", "coadds")} == {
        k: v for k, v in params.mzr.desi.model_dump().items() if k in ("z", "envelope", "seed", "coadds")
    }
    den = Denoiser.load(tmp_path / "desi/model", params=params)
    assert den.provenance["noise_model"] == "desi"
    assert den.noise_cfg.model == "gaussian" and den.noise_cfg.renormalise == "debiased"  # --add-noise stays Gaussian
    assert Denoiser.load(tmp_path / "main/model", params=params).provenance["noise_model"] == "gaussian"


def test_a_model_without_its_training_record_is_refused(tmp_path, params, tiny_processed, tiny_noisy):
    from specdenoise.errors import DataError

    train_one("pca", 2, params, tiny_processed, tiny_noisy, tmp_path / "m", tracking=False)
    (tmp_path / "m/model/preprocess.json").unlink()
    with pytest.raises(DataError, match="no preprocess.json"):
        Denoiser.load(tmp_path / "m/model", params=params)
