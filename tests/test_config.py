from pathlib import Path

import pytest

from specdenoise.config import Params, TrainConfig, deep_merge, load_params, parse_params, resolve_params
from specdenoise.errors import ConfigError
from specdenoise.models.neural_config import NetConfig

ROOT = Path(__file__).resolve().parents[1]


def test_repository_params_are_valid_and_paper_defaults():
    p = load_params(ROOT / "params.yaml")
    assert p.preprocess.n_pix == 825 and (p.preprocess.wave_min, p.preprocess.wave_max) == (3700.0, 7900.0)
    assert p.preprocess.norm == "l2"
    assert p.noise.sigma == 0.04
    assert (p.select.n_bins, p.select.per_bin, p.select.n_test) == (10, 1000, 2000)
    assert (p.select.log_flux_min, p.select.log_flux_max) == (0.2, 3.4)


@pytest.mark.parametrize(
    "data, fragment",
    [
        ({"universe": {"n_galaxys": 3}}, "unknown key 'universe.n_galaxys'"),
        ({"bogus": 1}, "unknown key 'bogus'"),
        ({"universe": {"n_galaxies": "many"}}, "universe.n_galaxies"),
        ({"universe": {"n_galaxies": -5}}, "universe.n_galaxies"),
        ({"preprocess": {"norm": "max"}}, "preprocess.norm"),
        ({"universe": {"z_min": 0.06}}, "z_min (0.06) must be below z_max"),
        ({"select": {"n_test": 50000}}, "n_test (50000)"),
        ({"noise": {"sigma": 0}}, "noise.sigma"),
        (
            {"mzr": {"posterior_snr_scales": [1, 0.5]}},
            "mzr.posterior_snr_scales.1: Input should be greater than or equal to 1",
        ),
        ({"mzr": {"posterior_snr_scales": [3, 3]}}, "mzr.posterior_snr_scales: Value error, values must be distinct"),
        ({"mzr": {"posterior_prior_draws": 500}}, "mzr.posterior_prior_draws: Input should be greater than or equal"),
        ({"mzr": {"population_form": "cubic"}}, "mzr.population_form: Input should be 'auto', 'linear'"),
        ({"mzr": {"posterior_draw_bootstrap": 1}}, "mzr.posterior_draw_bootstrap: Value error, one refit"),
        ({"noise": {"levels": [0.01, -0.04]}}, "noise.levels.1: Input should be greater than 0"),
        ({"noise": {"levels": [0.01, 0.01]}}, "noise.levels: Value error, values must be distinct, got [0.01, 0.01]"),
        # family sections (train.<family>) are validated by the family's settings model
        ({"train": {"ae": {"dropout": 1.5}}}, "train.ae.dropout: Input should be less than 1 (got 1.5)"),
        ({"train": {"vae": {"unitz": [10]}}}, "unknown key 'train.vae.unitz'"),
        ({"train": {"vae": {"units": [10, 0]}}}, "train.vae: Value error, units must be positive"),
        ({"train": {"foo": {"units": [10]}}}, "unknown key 'train.foo'"),
        ({"train": {"pca": {"width": 3}}}, "train.pca: model family 'pca' takes no settings"),
        (
            {"train": {"families": ["pca", "gan"]}},
            "train.families.1: unknown model family 'gan' (known: ae, mean, pca, posterior, vae, wiener)",
        ),
        (
            {"train": {"max_epochs": 0, "ae": {"dropout": 2}}},
            "train.max_epochs: Input should be greater than 0 (got 0) (+1 more)",
        ),
    ],
)
def test_bad_params_name_the_key(data, fragment):
    with pytest.raises(ConfigError) as err:
        parse_params(data, "params.yaml")
    msg = str(err.value)
    assert fragment in msg and msg.startswith("params.yaml") and "\n" not in msg


def test_missing_and_malformed_files(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_params(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("universe: [1, 2\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_params(bad)
    top = tmp_path / "top.yaml"
    top.write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match="mapping"):
        load_params(top)


def test_overrides_deep_merge(tmp_path):
    f = tmp_path / "p.yaml"
    f.write_text("universe:\n  n_galaxies: 10\n  seed: 4\n")
    p = load_params(f, overrides={"universe": {"n_galaxies": 20}})
    assert p.universe.n_galaxies == 20 and p.universe.seed == 4
    assert deep_merge({"a": {"b": 1, "c": 2}}, {"a": {"b": 3}}) == {"a": {"b": 3, "c": 2}}


def test_profiles_are_valid_and_default_is_params_yaml():
    import yaml

    from specdenoise.profiles import PROFILES_DIR, profile_text

    assert profile_text("default", ROOT / PROFILES_DIR) == (ROOT / "params.yaml").read_text()
    smoke = parse_params(yaml.safe_load(profile_text("smoke", ROOT / PROFILES_DIR)))
    paper = parse_params(yaml.safe_load(profile_text("paper", ROOT / PROFILES_DIR)))
    assert smoke.universe.n_galaxies < 10_000 and smoke.train.max_epochs <= 5
    assert paper.search.trials == 100 and paper.search.epochs == 25 and paper.train.max_epochs == 200
    assert paper.train.min_rel_drop == 0.1 and paper.select.per_bin == 1000
    with pytest.raises(ConfigError, match="profile 'fast'"):
        profile_text("fast", ROOT / PROFILES_DIR)


def test_pydantic_defaults_are_the_default_profile_and_params_yaml():
    defaults = Params().model_dump(by_alias=True)
    assert defaults == load_params(ROOT / "profiles" / "default.yaml").model_dump(by_alias=True)
    assert defaults == load_params(ROOT / "params.yaml").model_dump(by_alias=True)


def test_family_sections_keep_the_dump_and_attribute_access():
    p = load_params(ROOT / "params.yaml")
    tc = p.train
    assert tc.ae == tc.settings("ae") == tc.ae == NetConfig(units=[1000, 900], dropout=0.1)
    assert tc.settings("pca") is None and not hasattr(tc, "pca")
    with pytest.raises(ConfigError, match="unknown model family 'gan'"):
        tc.settings("gan")
    # the dump (hashed into the MLflow `benchmark` tag) has the same keys, in the same order, as
    # when ae / vae were hard fields
    assert list(tc.model_dump()) == [
        "families",
        "latent_dims",
        "realisation",
        "val_size",
        "seed",
        "weight_softening",
        "batch_size",
        "learning_rate",
        "max_epochs",
        "patience",
        "min_rel_drop",
        "lr_factor",
        "monitor",
        "fresh_noise",
        "kl_weight",
        "seeds",
        "level_seeds",
        "axis_dims",
        "extra",
        "ae",
        "vae",
        "posterior",
    ]
    assert tc.model_dump()["vae"] == {"units": [1000, 900], "dropout": 0.1}
    # sections come out in registration order whatever the input order; left-out ones are defaults
    t = TrainConfig(vae={"units": [64, 32], "dropout": 0.0}, ae=NetConfig(units=[8]))
    assert list(t.model_dump())[-3:] == ["ae", "vae", "posterior"] and t.ae.units == [8] and t.vae.units == [64, 32]
    assert TrainConfig(families=["vae"]).ae == NetConfig()
    assert tc.model_copy(update={"val_size": 3}).vae == tc.vae


def test_extra_models_are_validated():
    assert TrainConfig().extra == {"posterior": 6}
    with pytest.raises(ValueError, match="unknown model family 'gan'"):
        TrainConfig(extra={"gan": 4})
    with pytest.raises(ValueError, match="greater than 0"):
        TrainConfig(extra={"posterior": 0})
    with pytest.raises(ValueError, match="ae 4-D is already in the families x latent_dims matrix"):
        TrainConfig(extra={"ae": 4})


def test_axis_dims_must_be_trained_dims():
    with pytest.raises(ConfigError, match=r"train: .*axis_dims \[3\] are not in latent_dims"):
        parse_params({"train": {"axis_dims": [3]}}, "p.yaml")
    assert parse_params({"train": {"seeds": 5, "axis_dims": [2, 10]}}).train.axis_dims == [2, 10]
    with pytest.raises(ConfigError, match="train.seeds"):
        parse_params({"train": {"seeds": 0}}, "p.yaml")


def test_resolve_params(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    # nothing here: the built-in defaults, which are the default profile
    assert resolve_params() == Params()
    assert resolve_params(None).model_dump() == load_params(ROOT / "profiles" / "default.yaml").model_dump()
    # params.yaml in the current folder wins
    (tmp_path / "params.yaml").write_text("train:\n  max_epochs: 7\n  vae: {units: [64, 32]}\n")
    p = resolve_params()
    assert p.train.max_epochs == 7 and p.train.vae.units == [64, 32] and p.train.vae.dropout == 0.1
    # an explicit file, str or Path
    other = tmp_path / "other.yaml"
    other.write_text("search:\n  trials: 0\n")
    assert resolve_params(other).search.trials == 0 and resolve_params(str(other)).train.max_epochs == 60
    # an explicit file that does not exist is an error, never the defaults
    with pytest.raises(ConfigError, match=r"^nope.yaml: parameters file not found$"):
        resolve_params("nope.yaml")
    (tmp_path / "bad.yaml").write_text("train:\n  max_epoch: 3\n")
    with pytest.raises(ConfigError, match=r"^bad.yaml: unknown key 'train.max_epoch'$"):
        resolve_params("bad.yaml")
