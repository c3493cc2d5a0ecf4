"""DESI-like spectra: the noise model, dimming and the transform."""

from __future__ import annotations

import numpy as np
import pytest

from specdenoise.config import DesiConfig, PreprocessConfig
from specdenoise.data.desi import DesiNoise, desi_like, dimming
from specdenoise.io import save_npz
from specdenoise.sources.observe import sdss_loglam


def test_dimming_matches_planck18():
    from astropy.cosmology import Planck18

    z0 = np.array([0.03, 0.045])
    d0 = Planck18.luminosity_distance(z0).value
    d1 = Planck18.luminosity_distance(0.1).value
    assert dimming(z0, 0.1) == pytest.approx((d0 / d1) ** 2 * (1 + z0) / 1.1, rel=1e-3)


def test_noise_model_scales_with_pixel_width():
    wave_ref = np.arange(3600.0, 9800.0, 0.8)
    model = DesiNoise(wave_ref, np.ones_like(wave_ref), amplitude=2.0)
    grid = np.arange(5000.0, 6000.0, 2.0)
    assert np.allclose(model.sigma(grid, 1), 2.0 / np.sqrt(2.0))
    x, sig = model.realise(np.zeros((400, len(grid))), grid, np.random.default_rng(0))
    assert np.std(x / sig) == pytest.approx(1.0, abs=0.01)
    from specdenoise.errors import DataError

    with pytest.raises(DataError, match="outside the DESI range"):
        model.sigma(np.arange(3000.0, 4000.0), 1)


@pytest.fixture
def shape_file(tmp_path):
    wave = np.arange(3600.0, 9824.0, 0.8)
    shape = 1.0 + 0.5 * (wave < 4500)  # noisier blue end
    path = tmp_path / "shape.npz"
    save_npz(path, wave=wave, shape=shape, sigma_median=np.array([0.2]))
    return path


def test_desi_like_dims_and_adds_the_model_noise(shape_file):
    loglam = sdss_loglam()
    n = 40
    z0 = np.linspace(0.025, 0.05, n)
    f0 = np.linspace(5.0, 50.0, n)
    truth = np.repeat(f0[:, None], len(loglam), axis=1)  # flat f_lambda in the observed frame
    obs = {"loglam": loglam, "truth": truth, "z": z0, "id": np.arange(n)}
    cfg, pcfg = DesiConfig(), PreprocessConfig()
    res = desi_like(obs, cfg, pcfg, shape_file)
    from astropy.cosmology import Planck18

    # rest-frame flux density: (1 + z) f_obs; flat spectrum over 825 bins -> L2 norm = f sqrt(825)
    k = (Planck18.luminosity_distance(z0).value / Planck18.luminosity_distance(0.1).value) ** 2
    expected = f0 * (1 + z0) * k * np.sqrt(pcfg.n_pix)
    assert res["clean_norm"] == pytest.approx(expected, rel=2e-3)
    # the noise: pulls of unit width with the reported ivar
    pulls = (res["noisy"][0] - res["clean"]) * np.sqrt(res["ivar"])
    assert np.std(pulls) == pytest.approx(1.0, abs=0.02)
    # fainter galaxies are noisier (fixed exposure), and the blue end is noisier than the red
    sig = 1 / np.sqrt(res["ivar"]) * res["renorm"][0][:, None]
    assert np.median(sig[0]) > 3 * np.median(sig[-1])
    blue = res["wave"] * 1.1 < 4500
    assert np.median(sig[:, blue]) > 1.3 * np.median(sig[:, ~blue])
    # the median galaxy's normalised noise envelope is the configured one
    sig_clean_units = 1 / np.sqrt(res["ivar"]) / np.linalg.norm(res["clean"], axis=1)[:, None]
    env = np.percentile(sig_clean_units, 90, axis=1)
    assert np.median(env) == pytest.approx(cfg.envelope, rel=0.15)


def test_desi_like_rejects_higher_redshift(shape_file):
    from specdenoise.errors import DataError

    loglam = sdss_loglam()
    obs = {"loglam": loglam, "truth": np.ones((2, len(loglam))), "z": np.array([0.05, 0.2]), "id": np.arange(2)}
    with pytest.raises(DataError, match="mzr.desi.z"):
        desi_like(obs, DesiConfig(), PreprocessConfig(), shape_file)
