from pathlib import Path

import pytest

from specdenoise.config import deep_merge, load_params, parse_params
from specdenoise.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]


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
    from specdenoise.config import PROFILES_DIR, profile_text

    import yaml

    assert profile_text("default", ROOT / PROFILES_DIR) == (ROOT / "params.yaml").read_text()
    smoke = parse_params(yaml.safe_load(profile_text("smoke", ROOT / PROFILES_DIR)))
    paper = parse_params(yaml.safe_load(profile_text("paper", ROOT / PROFILES_DIR)))
    assert smoke.universe.n_galaxies < 10_000 and smoke.train.max_epochs <= 5
    assert paper.search.trials == 100 and paper.search.epochs == 25 and paper.train.max_epochs == 200
    assert paper.train.min_rel_drop == 0.1 and paper.select.per_bin == 1000
    with pytest.raises(ConfigError, match="profile 'fast'"):
        profile_text("fast", ROOT / PROFILES_DIR)
