import numpy as np
import pytest

from specdenoise.config import NoiseConfig
from specdenoise.data.noise import GaussianNoise, add_noise, make_noise_model, noisy_ivar
from specdenoise.errors import ConfigError


def _clean(n=400, n_pix=825, seed=0):
    rng = np.random.default_rng(seed)
    x = 1 + 0.3 * rng.random((n, n_pix))
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def test_noise_level_and_renormalisation():
    clean = _clean()
    wave = np.geomspace(3700, 7900, 825)
    res = add_noise(clean, wave, NoiseConfig(sigma=0.04, n_realisations=2, seed=1, renormalise="naive"))
    for r in range(2):
        resid = res["noisy"][r] * res["renorm"][r][:, None] - clean
        assert resid.std() == pytest.approx(0.04, rel=0.01)
        np.testing.assert_allclose(np.linalg.norm(res["noisy"][r], axis=1), 1.0, rtol=1e-5)
    # naive renormalisation by the L2 norm: E||x + e||^2 = 1 + n sigma^2
    assert np.median(res["renorm"]) == pytest.approx(np.sqrt(1 + 825 * 0.04**2), rel=0.01)
    assert not np.allclose(res["noisy"][0], res["noisy"][1])


def test_debiased_renormalisation_keeps_the_signal_scale():
    clean = _clean(2000)
    wave = np.geomspace(3700, 7900, 825)
    res = add_noise(clean, wave, NoiseConfig(sigma=0.04, n_realisations=1, seed=2))
    k = res["renorm"][0]
    assert np.mean(k) == pytest.approx(1.0, abs=0.005)  # unit signal norm on average
    # the noisy spectra scatter about the clean ones, not about a shrunken copy
    slope = np.sum(res["noisy"][0] * clean) / np.sum(clean * clean)
    assert slope == pytest.approx(1.0, abs=0.01)
    resid = res["noisy"][0] * k[:, None] - clean
    assert resid.std() == pytest.approx(0.04, rel=0.01)


def test_seeded_realisations_are_reproducible():
    clean = _clean(50)
    wave = np.geomspace(3700, 7900, 825)
    a = add_noise(clean, wave, NoiseConfig(seed=7))
    b = add_noise(clean, wave, NoiseConfig(seed=7))
    c = add_noise(clean, wave, NoiseConfig(seed=8))
    np.testing.assert_array_equal(a["noisy"], b["noisy"])
    assert not np.allclose(a["noisy"], c["noisy"])


def test_without_renormalisation_noise_is_plain_additive():
    clean = _clean(200)
    wave = np.geomspace(3700, 7900, 825)
    res = add_noise(clean, wave, NoiseConfig(renormalise="none", sigma=0.1, n_realisations=1))
    assert np.all(res["renorm"] == 1)
    assert (res["noisy"][0] - clean).std() == pytest.approx(0.1, rel=0.01)


def test_noisy_ivar_adds_variances():
    ivar = np.array([[4.0, 0.0]])
    out = noisy_ivar(ivar, np.array([0.5, 0.5]), np.array([2.0]))
    assert out[0, 0] == pytest.approx(1 / (0.25 + 0.25) * 4)
    assert out[0, 1] == 0


def test_interface_and_unknown_model():
    m = make_noise_model(NoiseConfig(sigma=0.2))
    assert isinstance(m, GaussianNoise) and np.all(m.sigma(np.ones(5), 3) == 0.2)
    cfg = NoiseConfig.model_construct(model="desi", sigma=0.1, n_realisations=1, renormalise="none", seed=0)
    with pytest.raises(ConfigError, match="noise.model: unknown noise model 'desi'"):
        make_noise_model(cfg)
