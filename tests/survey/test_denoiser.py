"""The Denoiser API on arrays: preprocessing identical to training, batches, masks, add-noise,
the preprocessing record travelling with the model, and one-line errors for bad models."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from specdenoise.config import parse_params
from specdenoise.errors import DataError


@pytest.fixture(scope="module")
def pca_dir(tmp_path_factory, tiny_processed, tiny_noisy):
    """A PCA de-noiser trained on the tiny universe, saved as train.py saves it."""
    from specdenoise.training.train import train_one

    params = parse_params({"train": {"val_size": 40}, "search": {"trials": 0}})
    root = tmp_path_factory.mktemp("den")
    train_one("pca", 4, params, tiny_processed, tiny_noisy, root / "pca_4", tracking=False)
    return root / "pca_4" / "model"


def _observed(obs, i):
    wave = 10 ** obs["loglam"]
    return wave, obs["flux"][i], obs["ivar"][i], obs["z"][i]


def test_import_is_lazy():
    code = (
        "import sys; from specdenoise import Denoiser; "
        "print(sorted(m for m in ('tensorflow', 'keras', 'mlflow', 'dask') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def test_preprocessing_record_travels_with_the_model(pca_dir):
    rec = json.loads((pca_dir / "preprocess.json").read_text())
    assert rec["preprocess"]["n_pix"] == 825 and rec["noise"]["renormalise"] == "debiased"
    assert len(rec["params_hash"]) == 12


def test_single_and_batch_match_the_training_preprocessing(pca_dir, tiny_observed, tiny_processed):
    from specdenoise import Denoiser
    from specdenoise.models import load_model

    den = Denoiser.load(pca_dir, params=parse_params({}))
    assert den.provenance["preprocess_source"] == "preprocess.json"
    wave, flux, ivar, z = _observed(tiny_observed, 3)
    res = den.denoise(wave, flux, ivar, z)
    assert res.denoised.shape == (825,) and isinstance(res.norm, float)
    np.testing.assert_allclose(res.wave, tiny_processed["wave"])
    np.testing.assert_allclose(res.input, tiny_processed["flux"][3], rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(res.norm, tiny_processed["norm"][3], rtol=1e-10)
    np.testing.assert_allclose(res.denoised, load_model(pca_dir).denoise(tiny_processed["flux"][3:4])[0], atol=1e-6)
    assert not res.calibrated and np.all(np.isnan(res.sigma))  # PCA without calibration: no sigma
    # a batch on one grid and a ragged list give the same numbers
    batch = den.denoise(wave, tiny_observed["flux"][:4], tiny_observed["ivar"][:4], tiny_observed["z"][:4])
    np.testing.assert_allclose(batch.denoised[3], res.denoised, atol=1e-6)
    ragged = den.denoise(
        [wave[5:], wave],
        [flux[5:], tiny_observed["flux"][0]],
        [ivar[5:], tiny_observed["ivar"][0]],
        [z, tiny_observed["z"][0]],
    )
    np.testing.assert_allclose(ragged.denoised[1], batch.denoised[0], atol=1e-6)


def test_partial_coverage_is_masked_not_hidden(pca_dir, tiny_observed):
    from specdenoise import Denoiser

    den = Denoiser.load(pca_dir, params=parse_params({}))
    wave, flux, ivar, z = _observed(tiny_observed, 0)
    keep = wave * 1 / (1 + z) > 4200.0  # the blue end of the rest grid is not observed
    res = den.denoise(wave[keep], flux[keep], ivar[keep], z)
    assert np.all(res.mask[res.wave < 4190.0])
    assert not np.any(res.mask[res.wave > 4300.0])
    assert 0.1 < res.masked_fraction < 0.3
    assert np.all(res.ivar[res.mask] == 0)


def test_add_noise_is_seeded_per_spectrum_and_denoising_helps(pca_dir, tiny_observed):
    from specdenoise import Denoiser

    den = Denoiser.load(pca_dir, params=parse_params({}))
    wave = 10 ** tiny_observed["loglam"]
    f, iv, z = tiny_observed["flux"][:6], tiny_observed["ivar"][:6], tiny_observed["z"][:6]
    ids = [f"g{i}" for i in range(6)]
    a = den.denoise(wave, f, iv, z, add_noise=0.04, seed=5, ids=ids)
    b = den.denoise(wave, f[2:4], iv[2:4], z[2:4], add_noise=0.04, seed=5, ids=ids[2:4])
    np.testing.assert_array_equal(a.input[2:4], b.input)  # same noise whatever the batch
    c = den.denoise(wave, f, iv, z, add_noise=0.04, seed=6, ids=ids)
    assert not np.allclose(a.input, c.input)
    noise = a.input - a.clean
    assert np.std(noise) == pytest.approx(0.04, rel=0.1)
    err_in = np.sqrt(np.mean(noise**2))
    err_out = np.sqrt(np.mean((a.denoised - a.clean) ** 2))
    assert err_out < 0.5 * err_in
    with pytest.raises(DataError, match="add_noise"):
        den.denoise(wave, f, iv, z, add_noise=-1.0)


def test_model_without_its_preprocessing_record_is_a_one_line_error(pca_dir, tmp_path):
    import shutil

    from specdenoise import Denoiser
    from specdenoise.errors import DataError

    legacy = tmp_path / "legacy"
    shutil.copytree(pca_dir, legacy)
    (legacy / "preprocess.json").unlink()
    with pytest.raises(DataError, match=r"no preprocess\.json \(the preprocessing it was trained with\); retrain it"):
        Denoiser.load(legacy, params=parse_params({"preprocess": {"norm": "median"}}))
    # with the record, the record wins over the parameters file
    den2 = Denoiser.load(pca_dir, params=parse_params({"preprocess": {"norm": "median"}}))
    assert den2.preprocess_cfg.norm == "l2"


def test_bad_inputs_and_models_are_one_line_errors(pca_dir, tmp_path, tiny_observed, monkeypatch):
    from specdenoise import Denoiser

    with pytest.raises(DataError, match="not a models:/ or runs:/ URI nor an existing model directory"):
        Denoiser.load(tmp_path / "nowhere")
    with pytest.raises(DataError, match="no family.json"):
        Denoiser.load(tmp_path)
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    with pytest.raises(DataError, match="MLflow store .* does not exist"):
        Denoiser.load("models:/specdenoise-vae@champion", params=parse_params({}))
    assert not (tmp_path / "mlflow.db").exists()  # a failed load creates no store
    den = Denoiser.load(pca_dir, params=parse_params({}))
    wave, flux, ivar, z = _observed(tiny_observed, 0)
    with pytest.raises(DataError, match="redshift z=1.5 out of range"):
        den.denoise(wave, flux, ivar, 1.5)
    bad = flux.copy()
    bad[10] = np.nan
    with pytest.raises(DataError, match="non-finite flux"):
        den.denoise(wave, bad, ivar, z)
    with pytest.raises(DataError, match="not strictly increasing") as err:
        den.denoise(wave[::-1], flux, ivar, z)
    assert "\n" not in str(err.value)


@pytest.fixture(scope="module")
def posterior_dir(tmp_path_factory, tiny_processed, tiny_noisy):
    """A small posterior de-noiser (noise-aware) trained as train.py trains it."""
    from specdenoise.training.train import train_one

    small = {"n_prior": 800, "n_kmeans": 400, "n_components": 2, "n_calib": 300, "chunk": 400, "halpha_levels": ()}
    params = parse_params({"train": {"val_size": 40, "posterior": small}, "search": {"trials": 0}})
    root = tmp_path_factory.mktemp("den_post")
    train_one("posterior", 4, params, tiny_processed, tiny_noisy, root / "posterior_4", tracking=False)
    return root / "posterior_4" / "model"


def test_noise_aware_model_gets_each_spectrums_own_noise(posterior_dir, tiny_observed):
    """At the spectra's native S/N the posterior follows them (it is told their ivar); told the
    training noise instead (sigma 0.04) it would smooth them towards the prior."""
    from specdenoise import Denoiser
    from specdenoise.survey.targets import reduced_chi2

    den = Denoiser.load(posterior_dir, params=parse_params({}))
    wave = 10 ** tiny_observed["loglam"]
    f, iv, z = tiny_observed["flux"][:8], tiny_observed["ivar"][:8], tiny_observed["z"][:8]
    res = den.denoise(wave, f, iv, z)
    assert res.calibrated and np.all(np.isfinite(res.sigma[~res.mask])) and res.ood.shape == (8,)
    chi2_own = reduced_chi2(res.denoised, res.input, res.ivar, res.mask)
    blind, _, _ = den.predict(res.input)  # no ivar: the training noise is assumed
    chi2_blind = reduced_chi2(blind, res.input, res.ivar, res.mask)
    assert np.median(chi2_own) < 1.5 and np.median(chi2_blind) > 2 * np.median(chi2_own)
