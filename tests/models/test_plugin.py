"""The plug-in interface: a family defined outside the package (tests/models/toy_family.py) is
accepted by the configuration (its own ``train.smooth`` section) and trains, de-noises, saves
and loads through the base API, without any edit of specdenoise."""

from __future__ import annotations

import json

import numpy as np
import pytest
import yaml

from models.toy_family import NAME, SmoothDenoiser, SmoothSettings, box_smooth, registered, toy_training_data
from specdenoise.config import Params, TrainConfig, load_params, parse_params
from specdenoise.errors import ConfigError
from specdenoise.models import FAMILIES, get_family, load_model


@pytest.fixture
def smooth_family():
    """The ``smooth`` family, registered for one test only."""
    with registered() as cls:
        yield cls
    assert NAME not in FAMILIES


def _toy(n=500, n_pix=60, sigma=0.3, seed=0):
    """Smooth clean spectra (a few broad Gaussians) plus white noise; (clean, noisy), float32."""
    rng = np.random.default_rng(seed)
    pix = np.arange(n_pix)
    centres = rng.uniform(0, n_pix, (n, 3))
    amps = rng.uniform(0.5, 2.0, (n, 3))
    clean = 1.0 + np.sum(amps[:, :, None] * np.exp(-0.5 * ((pix - centres[:, :, None]) / 6.0) ** 2), axis=1)
    noisy = clean + sigma * rng.standard_normal(clean.shape)
    return clean.astype(np.float32), noisy.astype(np.float32)


def test_unregistered_family_is_rejected_by_the_config():
    assert NAME not in FAMILIES
    with pytest.raises(
        ConfigError,
        match=r"^params.yaml: train.families.1: unknown model family 'smooth' "
        r"\(known: ae, mean, pca, posterior, vae, wiener\)",
    ):
        parse_params({"train": {"families": ["pca", NAME]}}, "params.yaml")
    with pytest.raises(ConfigError, match=r"^params.yaml: unknown key 'train.smooth'$"):
        parse_params({"train": {NAME: {"width": 3}}}, "params.yaml")


def test_registered_family_validates_its_own_section(smooth_family, tmp_path):
    f = tmp_path / "params.yaml"
    f.write_text(yaml.safe_dump({"train": {"families": ["pca", NAME], NAME: {"width": 7}}}))
    p = load_params(f)
    assert p.train.families == ["pca", NAME]
    assert p.train.smooth == SmoothSettings(width=7) == p.train.settings(NAME)
    assert smooth_family.default_hyper(p.train) == {"width": 7}
    assert p.model_dump(by_alias=True)["train"][NAME] == {"width": 7}
    # left out: the settings' defaults (also for configurations read before registration)
    assert TrainConfig().settings(NAME) == SmoothSettings() and Params().train.smooth.width == 5
    # the family's own rules, reported like every other key
    for section, fragment in [
        ({"width": 4}, "train.smooth: Value error, width must be odd, got 4"),
        ({"width": 0}, "train.smooth.width: Input should be greater than or equal to 1 (got 0)"),
        ({"widht": 3}, "unknown key 'train.smooth.widht'"),
        ("wide", "train.smooth: Input should be a valid dictionary"),
    ]:
        with pytest.raises(ConfigError) as err:
            parse_params({"train": {NAME: section}}, "params.yaml")
        msg = str(err.value)
        assert msg.startswith("params.yaml: ") and fragment in msg and "\n" not in msg, msg


def test_registered_family_fits_denoises_saves_and_loads(smooth_family, tmp_path):
    clean, noisy = _toy()
    data = toy_training_data(clean, noisy, 0.3)
    cls = get_family(NAME)
    assert cls is smooth_family is SmoothDenoiser
    assert (cls.iterative, cls.searchable, cls.has_posterior, cls.registry_candidate, cls.mlflow_flavour) == (
        False,
        False,
        False,
        False,
        "pyfunc",
    )
    hyper = cls.default_hyper(parse_params({"train": {NAME: {"width": 9}}}).train)
    m = cls(4, hyper)
    history = m.fit(data, TrainConfig(), seed=0, callbacks=[], epochs=3)  # closed form: epochs ignored
    assert history == {}
    x, y = noisy[:100], clean[:100]
    out = m.denoise(x)
    assert out.shape == x.shape and out.dtype == np.float32
    assert np.mean((out - y) ** 2) < 0.3 * np.mean((x - y) ** 2)
    # the fitted blend weight is the least-squares one
    s = box_smooth(data.x, 9)
    a, b = s - s.mean(0), data.y - data.y.mean(0)
    assert m.alpha == pytest.approx(np.sum(a * b) / np.sum(a * a), rel=1e-9)
    m.save(tmp_path / "smooth")
    meta = json.loads((tmp_path / "smooth" / "family.json").read_text())
    assert meta["family"] == NAME and meta["hyper"] == {"width": 9}
    again = load_model(tmp_path / "smooth")
    assert isinstance(again, SmoothDenoiser) and again.hyper == {"width": 9}
    np.testing.assert_array_equal(again.denoise(x), out)
    assert again.n_parameters() == 2 * clean.shape[1] + 1
    # what the family cannot do is refused clearly
    assert m.native_model() is None and not m.posterior_ready()
    with pytest.raises(NotImplementedError, match="'smooth' draws no posterior samples"):
        m.posterior(x, 10, 0)
    with pytest.raises(NotImplementedError, match="'smooth' has no hyper-parameter search space"):
        cls.suggest_hyper(None, Params().search)
    from specdenoise.models.search import random_search

    with pytest.raises(ConfigError, match="'smooth' has no hyper-parameter search space"):
        random_search(get_family(NAME), 4, data, Params(), seed=0)


def test_unregistering_restores_the_default_configuration():
    before = json.dumps(Params().model_dump(by_alias=True), sort_keys=True)
    with registered():
        assert NAME in json.dumps(Params().model_dump(by_alias=True))
    assert NAME not in FAMILIES
    assert json.dumps(Params().model_dump(by_alias=True), sort_keys=True) == before
    with pytest.raises(ConfigError, match="unknown model family 'smooth'"):
        get_family(NAME)
