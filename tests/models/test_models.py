"""Model families: known answers, a tiny real training run, reproducibility, save/load."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from models.toy_family import toy_training_data
from specdenoise.config import TrainConfig
from specdenoise.errors import ConfigError
from specdenoise.models import get_family, load_builtin_families, load_model
from specdenoise.models.linear import wiener_operator
from specdenoise.models.losses import kl_divergence, pixel_weights, weighted_mse
from specdenoise.training.splits import training_data


def _toy(n=600, n_pix=40, seed=0, sigma=0.3):
    """Gaussian toy: x ~ N(mu, C) with a low-rank-plus-diagonal C, y = x + noise."""
    rng = np.random.default_rng(seed)
    basis = rng.standard_normal((3, n_pix))
    mu = np.linspace(1, 2, n_pix)
    clean = mu + rng.standard_normal((n, 3)) @ basis
    noisy = clean + sigma * rng.standard_normal(clean.shape)
    return clean.astype(np.float32), noisy.astype(np.float32), sigma


def test_weights_and_losses():
    w = pixel_weights(np.array([[1e6, 0.0, 4e5]]), 2e-6)
    np.testing.assert_allclose(w, [[1 / (1e-6 + 2e-6), 0.0, 1 / (2.5e-6 + 2e-6)]], rtol=1e-6)
    assert weighted_mse(np.array([[1.0, 2.0]]), np.array([[0.0, 0.0]]), np.array([[2.0, 1.0]]))[0] == pytest.approx(3.0)


def test_kl_matches_the_analytic_value():
    # KL(N(mu, s^2) || N(0, 1)) = log(1/s) + (s^2 + mu^2)/2 - 1/2 per dimension
    mu = np.array([[0.5, -1.0]])
    s = np.array([[2.0, 0.5]])
    expected = np.sum(np.log(1 / s) + (s**2 + mu**2) / 2 - 0.5)
    assert kl_divergence(mu, np.log(s**2))[0] == pytest.approx(expected)
    assert kl_divergence(np.zeros((1, 3)), np.zeros((1, 3)))[0] == pytest.approx(0.0)
    # the Keras sampling layer adds the same value to the model loss
    import keras

    from specdenoise.models.neural import _make_sampling_layer

    layer = _make_sampling_layer()(kl_weight=1.0, seed=1)
    layer(
        [keras.ops.convert_to_tensor(mu.astype("float32")), keras.ops.convert_to_tensor(np.log(s**2).astype("float32"))]
    )
    assert float(np.asarray(layer.losses[0])) == pytest.approx(expected, rel=1e-5)


def test_pca_with_all_components_reproduces_its_input():
    clean, noisy, sigma = _toy(n_pix=20)
    m = get_family("pca")(20)
    m.fit(toy_training_data(clean, noisy, sigma), TrainConfig(), seed=0)
    np.testing.assert_allclose(m.denoise(noisy[:50]), noisy[:50], atol=1e-4)


def test_wiener_equals_the_analytic_answer_on_a_gaussian_toy():
    clean, noisy, sigma = _toy(n=4000)
    data = toy_training_data(clean, noisy, sigma)
    m = get_family("wiener")(clean.shape[1])
    m.fit(data, TrainConfig(), seed=0)
    y = np.asarray(data.y, float)
    mu, cov = y.mean(0), np.cov(y, rowvar=False)
    x = noisy[:100].astype(float)
    analytic = mu + (cov @ np.linalg.solve(cov + sigma**2 * np.eye(len(mu)), (x - data.x.mean(0)).T)).T
    np.testing.assert_allclose(m.denoise(x), analytic, atol=2e-4)
    # general (non-isotropic) branch agrees with the eigen-shrinkage branch
    left, right = wiener_operator(cov, np.full(len(mu), sigma**2) * (1 + 1e-9 * np.arange(len(mu))))
    np.testing.assert_allclose(left @ right, m.left @ m.right, atol=1e-6)
    # and it beats the noisy input by roughly the theoretical factor
    mse_in = np.mean((noisy[:100] - clean[:100]) ** 2)
    mse_w = np.mean((m.denoise(noisy[:100]) - clean[:100]) ** 2)
    assert mse_w < 0.2 * mse_in


@pytest.mark.parametrize("family", ["ae", "vae"])
def test_tiny_training_lowers_the_loss_far_below_the_noisy_input(family):
    clean, noisy, sigma = _toy(n=800, n_pix=40, sigma=0.5)
    data = toy_training_data(clean, noisy, sigma)
    cfg = TrainConfig(max_epochs=15, learning_rate=5e-3, batch_size=32, patience=10)  # ratio 0.15 (AE), 0.24 (VAE)
    m = get_family(family)(3, {"units": [64, 32], "dropout": 0.0})
    hist = m.fit(data, cfg, seed=3)
    assert hist["loss"][-1] < hist["loss"][0]
    x, y = noisy[:100], clean[:100]
    w = np.ones_like(y)
    model_loss = weighted_mse(m.denoise(x), y, w).mean()
    input_loss = weighted_mse(x, y, w).mean()
    assert model_loss < 0.5 * input_loss


def test_same_seed_same_losses_and_save_load(tmp_path):
    clean, noisy, sigma = _toy(n=300, n_pix=30)
    data = toy_training_data(clean, noisy, sigma, n_val=50)
    cfg = TrainConfig(max_epochs=3)
    runs = []
    for _ in range(2):
        m = get_family("vae")(2, {"units": [32, 16], "dropout": 0.2})
        runs.append(m.fit(data, cfg, seed=7)["loss"])
    np.testing.assert_allclose(runs[0], runs[1], rtol=1e-6)
    m.save(tmp_path / "vae")
    again = load_model(tmp_path / "vae")
    np.testing.assert_allclose(again.denoise(noisy[:5]), m.denoise(noisy[:5]), atol=1e-6)
    assert (tmp_path / "vae" / "model.keras").exists()


def test_every_family_is_registered_and_unknown_is_named():
    assert {"pca", "wiener", "ae", "vae", "mean", "posterior"} <= set(load_builtin_families())
    with pytest.raises(ConfigError, match="unknown model family 'gan'"):
        get_family("gan")


def test_paper_schedule_drops_lr_then_stops():
    import keras

    from specdenoise.models.neural import make_paper_schedule

    model = keras.Sequential([keras.Input((1,)), keras.layers.Dense(1)])
    model.compile(optimizer=keras.optimizers.Adam(learning_rate=1.0), loss="mse")
    cb = make_paper_schedule("loss", 0.1, 2, 0.1)
    cb.set_model(model)
    cb.on_train_begin()
    for epoch, value in enumerate([10.0, 8.0, 9.9, 9.9, 9.9, 9.9, 9.9]):
        cb.on_epoch_end(epoch, {"loss": value})
        if model.stop_training:
            break
    # 10 -> 8 at epoch 1 is a >10 % drop; epochs 2-3 bring none, so the rate drops after epoch 3,
    # and two more epochs without a drop stop training after epoch 5
    assert cb.lr_drops == [3]
    assert model.stop_training and cb.stopped_epoch == 5
    assert float(np.asarray(model.optimizer.learning_rate)) == pytest.approx(0.1)


def test_search_space_and_baseline_trial():
    import optuna

    from specdenoise.config import SearchConfig
    from specdenoise.models.neural_config import NetConfig
    from specdenoise.models.search import baseline_trial, suggest

    cfg = SearchConfig()
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    base = baseline_trial(NetConfig(units=[1000, 900], dropout=0.1), cfg)
    assert base == {"dropout_step": 1, "n_layers": 2, "units_0": 1000, "units_1": 900}
    study.enqueue_trial(base)
    drawn = [suggest(study.ask(), cfg) for _ in range(40)]
    assert drawn[0] == {"dropout": 0.1, "units": [1000, 900]}
    for hp in drawn:
        assert 0.0 <= hp["dropout"] <= 0.9 and round(hp["dropout"] * 10, 6) == int(round(hp["dropout"] * 10))
        assert 2 <= len(hp["units"]) <= 4
        assert all(100 <= u <= 1000 and u % 100 == 0 for u in hp["units"])
        assert all(b <= a for a, b in zip(hp["units"], hp["units"][1:], strict=False))  # never wider than the previous
    assert baseline_trial(NetConfig(units=[64, 32], dropout=0.1), cfg) is None  # outside the space


def test_fresh_noise_training_draws_new_noise_each_epoch():
    clean, noisy, sigma = _toy(n=300, n_pix=30, sigma=0.5)
    data = toy_training_data(clean, noisy, sigma, n_val=50)
    calls = []

    def fresh(y, rng):
        calls.append(rng.standard_normal())
        return y + sigma * rng.standard_normal(y.shape)

    data.noise = fresh
    cfg = TrainConfig(max_epochs=4, fresh_noise=True, learning_rate=3e-3, batch_size=32)
    m = get_family("ae")(3, {"units": [32, 16], "dropout": 0.0})
    hist = m.fit(data, cfg, seed=1)
    assert len(hist["loss"]) == 4
    assert len(calls) >= 4 and len(set(calls)) == len(calls)  # a new draw every epoch


def test_training_data_fresh_noise_matches_the_noise_stage(tiny_params, tiny_processed, tiny_noisy):
    """Fresh per-epoch noise is drawn exactly as the noise stage draws its realisations."""
    from specdenoise.data.noise import add_noise

    params = tiny_params.model_copy(update={"train": tiny_params.train.model_copy(update={"val_size": 20})})
    data, _ = training_data(tiny_processed, tiny_noisy, params)
    seq = np.random.SeedSequence(123).spawn(1)[0]
    fresh = data.noise(tiny_processed["flux"], np.random.default_rng(seq))
    cfg = params.noise.model_copy(update={"n_realisations": 1, "seed": 123})
    ref = add_noise(tiny_processed["flux"], tiny_processed["wave"], cfg, params.preprocess.norm)["noisy"][0]
    np.testing.assert_allclose(fresh, ref, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(
    "family, iterative, searchable, has_posterior, registry_candidate, flavour, settings",
    [
        ("pca", False, False, False, False, "pyfunc", None),
        ("mean", False, False, False, False, "pyfunc", None),
        ("wiener", False, False, False, False, "pyfunc", None),
        ("ae", True, True, False, False, "keras", "NetConfig"),
        ("vae", True, True, True, True, "keras", "NetConfig"),
    ],
)
def test_capabilities_are_class_attributes(
    family, iterative, searchable, has_posterior, registry_candidate, flavour, settings
):
    from specdenoise.config import load_params

    cls = get_family(family)
    assert (cls.iterative, cls.searchable, cls.has_posterior, cls.registry_candidate, cls.mlflow_flavour) == (
        iterative,
        searchable,
        has_posterior,
        registry_candidate,
        flavour,
    )
    assert (cls.settings_model.__name__ if cls.settings_model else None) == settings
    # default_hyper: the train.<family> section, exactly as training built it before
    for path in ("params.yaml", "profiles/paper.yaml"):
        tc = load_params(Path(__file__).resolve().parents[2] / path).train
        expected = (
            {"units": list(getattr(tc, family).units), "dropout": getattr(tc, family).dropout} if settings else {}
        )
        assert cls.default_hyper(tc) == expected
    if not cls.has_posterior:
        with pytest.raises(NotImplementedError, match="draws no posterior samples"):
            cls(2).posterior(np.zeros((1, 5), np.float32), 5, 0)


def test_closed_form_families_take_the_iterative_arguments_and_ignore_them():
    clean, noisy, sigma = _toy(n=300, n_pix=20)
    data = toy_training_data(clean, noisy, sigma)
    for family in ("pca", "wiener", "mean"):
        a, b = get_family(family)(3), get_family(family)(3)
        assert a.fit(data, TrainConfig(), seed=0) == {} == b.fit(data, TrainConfig(), seed=0, callbacks=[], epochs=2)
        np.testing.assert_array_equal(a.denoise(noisy[:10]), b.denoise(noisy[:10]))
        assert a.native_model() is None


def test_vae_posterior_is_seeded_centred_on_the_mean_and_survives_a_round_trip(tmp_path):
    import shutil

    from specdenoise.errors import DataError

    clean, noisy, sigma = _toy(n=300, n_pix=30)
    m = get_family("vae")(2, {"units": [32, 16], "dropout": 0.2})
    m.fit(toy_training_data(clean, noisy, sigma, n_val=50), TrainConfig(max_epochs=2), seed=7)
    x = noisy[:20]
    pred, spread = m.posterior(x, 10, 3)
    np.testing.assert_array_equal(spread, m.posterior(x, 10, 3)[1])  # seeded
    assert not np.allclose(spread, m.posterior(x, 10, 4)[1])
    # batches draw on from one generator: the spread does not depend on the batch size in law, only in its draws
    many = m.posterior(x, 200, 3, batch=7)[1]
    np.testing.assert_allclose(np.median(many / m.posterior(x, 200, 3)[1]), 1.0, atol=0.05)
    np.testing.assert_allclose(pred, m.denoise(x), atol=1e-5)
    assert spread.shape == x.shape and np.all(spread > 0)
    # the same after a save / load round trip
    m.save(tmp_path / "vae")
    again = load_model(tmp_path / "vae")
    assert again.posterior_ready()
    np.testing.assert_array_equal(again.posterior(x, 10, 3)[1], m.posterior(x, 10, 3)[1])
    assert m.native_model() is m.model
    with pytest.raises(DataError, match="at least 2 posterior samples"):
        m.posterior(x, 1, 3)
    # a VAE saved without its encoder de-noises but draws no samples
    shutil.copytree(tmp_path / "vae", tmp_path / "vae_noenc")
    (tmp_path / "vae_noenc" / "encoder.keras").unlink()
    bare = load_model(tmp_path / "vae_noenc")
    assert type(bare).has_posterior and not bare.posterior_ready()
    with pytest.raises(DataError, match="no encoder loaded"):
        bare.posterior(x, 10, 3)


def test_search_uses_the_family_space_and_reports_every_trial():
    import contextlib

    from specdenoise.config import Params, SearchConfig
    from specdenoise.models.neural_config import NetConfig
    from specdenoise.models.search import baseline_trial, random_search

    tc = TrainConfig(ae={"units": [200, 100], "dropout": 0.1}, max_epochs=2, batch_size=64)
    cfg = SearchConfig(trials=2, epochs=1, max_units=200)
    cls = get_family("ae")
    assert cls.baseline_trial(tc, cfg) == baseline_trial(NetConfig(units=[200, 100], dropout=0.1), cfg)
    params = Params(train=tc, search=cfg)
    clean, noisy, sigma = _toy(n=200, n_pix=20)
    logged = []

    @contextlib.contextmanager
    def trial(number, hyper):
        yield lambda history, value: logged.append((number, dict(hyper), len(history["loss"]), value))

    best, records = random_search(
        get_family("ae"), 2, toy_training_data(clean, noisy, sigma, n_val=50), params, seed=1, trial=trial
    )
    assert [r["trial"] for r in records] == [0, 1] and [n for n, *_ in logged] == [0, 1]
    assert {k: records[0][k] for k in ("dropout", "units")} == {"dropout": 0.1, "units": [200, 100]}  # the baseline
    assert all(epochs == 1 for *_, epochs, _ in logged)
    assert [v for *_, v in logged] == [r["final_val_loss"] for r in records]
    chosen = min(records, key=lambda r: r["final_val_loss"])
    assert best == {"dropout": chosen["dropout"], "units": chosen["units"]}
    with pytest.raises(ConfigError, match="'pca' has no hyper-parameter search space"):
        random_search(get_family("pca"), 2, None, params, seed=1)


def test_mean_family_returns_the_training_population_mean_whatever_the_input(
    tiny_params, tiny_processed, tiny_noisy, tmp_path
):
    """The prior-only baseline trains through train_one like any family and ignores its input."""
    from specdenoise.models import store
    from specdenoise.training.train import train_one

    cls = get_family("mean")
    assert cls.has_latent is False and not cls.has_posterior and cls.mlflow_flavour == "pyfunc"
    params = tiny_params.model_copy(update={"train": tiny_params.train.model_copy(update={"val_size": 20})})
    data, test = training_data(tiny_processed, tiny_noisy, params)
    out = tmp_path / store.key("mean", 2)
    record = train_one("mean", 2, params, tiny_processed, tiny_noisy, out, tracking=False)
    assert record["history"] == {} and record["metrics"]["epochs"] == 0
    (tm,) = store.list_models(tmp_path)
    model = tm.load()
    mu = np.asarray(data.y, dtype=np.float64).mean(axis=0)
    rng = np.random.default_rng(0)
    for x in (test["x"][:5], rng.standard_normal((3, mu.size)).astype(np.float32), np.zeros((2, mu.size), np.float32)):
        out_x = model.denoise(x)
        assert out_x.shape == x.shape
        np.testing.assert_allclose(out_x, np.broadcast_to(mu, x.shape), rtol=1e-6, atol=1e-7)
