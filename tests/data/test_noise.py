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


def test_levels_are_positive_distinct_and_always_hold_the_paper_sigma():
    from specdenoise.config import parse_params

    assert parse_params({"noise": {"levels": [0.02, 0.01]}}).noise.all_levels == [0.01, 0.02, 0.04]
    for levels, word in (([0.0, 0.04], "greater than 0"), ([0.04, 0.04], "distinct")):
        with pytest.raises(ConfigError, match=word) as err:
            parse_params({"noise": {"levels": levels}}, "p.yaml")
        assert "noise" in str(err.value)


def test_every_level_is_written_with_its_own_seed_and_snr(tmp_path):
    from specdenoise.data.artefacts import Spectra, noisy_level_path
    from specdenoise.data.noise import at_level, run

    rng = np.random.default_rng(0)
    flux = np.abs(rng.normal(1.0, 0.1, (20, 100)))
    flux /= np.linalg.norm(flux, axis=1, keepdims=True)
    wave = np.linspace(4000, 7000, 100)
    n = len(flux)
    Spectra.from_arrays(
        {
            "wave": wave,
            "flux": flux,
            "ivar": np.ones_like(flux),
            "norm": np.ones(n),
        }
    ).save(tmp_path / "spectra.npz")
    cfg = NoiseConfig(sigma=0.04, levels=[0.005, 0.04], n_realisations=1, seed=3)
    run(cfg, "l2", tmp_path / "spectra.npz", tmp_path / "noisy.npz", tmp_path / "levels", tmp_path / "snr.json")
    paper = np.load(tmp_path / "noisy.npz")["noisy"]
    alone = add_noise(flux, wave, cfg, "l2")["noisy"]
    np.testing.assert_array_equal(paper, alone)  # the paper column does not depend on the other levels
    low = np.load(noisy_level_path(tmp_path / "levels", 0.005))
    assert np.std(low["noisy"][0] * low["renorm"][0][:, None] - flux) == pytest.approx(0.005, rel=0.05)
    assert at_level(cfg, 0.005).seed == at_level(cfg.model_copy(update={"levels": [0.005, 0.01, 0.04]}), 0.005).seed
    assert at_level(cfg, 0.04) is cfg
    import json

    snr = json.loads((tmp_path / "snr.json").read_text())
    expect = np.median(np.median(flux, axis=1)) / 0.005
    assert snr["levels"]["0.005"]["snr_median"] == pytest.approx(expect, rel=0.05)
    assert snr["levels"]["0.04"]["snr_median"] == pytest.approx(expect / 8, rel=0.1)
