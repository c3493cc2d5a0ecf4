"""Bad ``params.yaml``: every float finite and in range, no empty file, no duplicate key, a mapping
at the top; each is one ``error:`` line naming the file and the key, exit 2, nothing written."""

from __future__ import annotations

import pytest
import yaml
from tests.faults.harness import assert_fails, cli, fingerprint
from tests.faults.projects import PARAMS, train_args

from specdenoise.config import deep_merge
from specdenoise.errors import EXIT_USAGE


def _train_with(proj, text: str):
    """Write ``text`` as the parameters file and try to train pca_3 with it; check nothing was written."""
    params = proj / "params.yaml"
    params.write_text(text)
    before = fingerprint(proj)
    res = cli(*train_args(proj, "-m", "pca", "-d", "3", "--no-tracking"), cwd=proj)
    assert fingerprint(proj) == before  # inputs unchanged, no model folder, no temp file
    return res, params


@pytest.mark.parametrize(
    "section, key, value",
    [
        ("noise", "sigma", ".inf"),
        ("noise", "sigma", ".nan"),
        ("noise", "sigma", "-0.04"),
        ("train", "learning_rate", ".inf"),
        ("universe", "z_max", ".nan"),
        ("universe", "r_mag_limit", "-.inf"),
        ("lines", "sigma_kms", ".nan"),
        ("validate", "noise_tolerance", ".inf"),
    ],
)
def test_non_finite_or_out_of_range_float_is_refused(proj, section, key, value):
    text = yaml.safe_dump(deep_merge(PARAMS, {section: {key: 0.5}})).replace(f"{key}: 0.5", f"{key}: {value}")
    res, params = _train_with(proj, text)
    assert_fails(res, EXIT_USAGE, str(params), f"{section}.{key}")


@pytest.mark.parametrize("key, value", [("vae.dropout", ".nan"), ("ae.dropout", ".inf")])
def test_non_finite_float_in_a_family_section_is_refused(proj, key, value):
    family, field = key.split(".")
    text = yaml.safe_dump(deep_merge(PARAMS, {"train": {family: {field: 0.5}}})).replace(
        f"{field}: 0.5", f"{field}: {value}"
    )
    res, params = _train_with(proj, text)
    assert_fails(res, EXIT_USAGE, str(params), f"train.{key}")


@pytest.mark.parametrize("text", ["", "\n\n", "# only a comment\n# and another\n"], ids=["empty", "blank", "comments"])
def test_empty_parameters_file_is_refused(proj, text):
    res, params = _train_with(proj, text)
    assert_fails(res, EXIT_USAGE, str(params), "empty")


@pytest.mark.parametrize(
    "text, key, lines",
    [
        ("noise:\n  sigma: 0.04\n  seed: 3\n  sigma: 0.5\n", "sigma", (2, 4)),
        ("noise:\n  sigma: 0.04\nselect:\n  seed: 5\nnoise:\n  seed: 4\n", "noise", (1, 5)),
        ("train:\n  vae:\n    units: [64, 32]\n    units: [8]\n", "units", (3, 4)),
    ],
    ids=["nested", "top-level", "family-section"],
)
def test_duplicate_key_names_the_key_and_both_lines(proj, text, key, lines):
    res, params = _train_with(proj, text)
    assert_fails(res, EXIT_USAGE, str(params), f"duplicate key '{key}'", f"lines {lines[0]} and {lines[1]}")


@pytest.mark.parametrize("text, kind", [("- noise\n- train\n", "list"), ("42\n", "int"), ("just text\n", "str")])
def test_top_level_must_be_a_mapping(proj, text, kind):
    res, params = _train_with(proj, text)
    assert_fails(res, EXIT_USAGE, str(params), "top level must be a mapping", kind)


def test_yaml_merge_keys_are_not_duplicates(proj):
    """A control: ``<<`` merges are legal YAML and no duplicate (the refusals above are specific)."""
    from specdenoise.config import load_params

    params = proj / "params.yaml"
    params.write_text(yaml.safe_dump(PARAMS) + "lines:\n  <<: {seed: 61, fitter: fast}\n  seed: 62\n")
    assert load_params(params).lines.seed == 62


@pytest.mark.parametrize(
    "extra, says",
    [
        ({"gan": 4}, "unknown model family 'gan'"),
        ({"posterior": 0}, "greater than 0"),
        ({"ae": 2}, "already in the families x latent_dims matrix"),
    ],
    ids=["unknown-family", "zero-dim", "in-the-matrix"],
)
def test_bad_extra_model_is_refused(proj, extra, says):
    text = yaml.safe_dump(deep_merge(PARAMS, {"train": {"extra": extra}}))
    res, params = _train_with(proj, text)
    assert_fails(res, EXIT_USAGE, str(params), "train.extra", says)


@pytest.mark.parametrize(
    "posterior, says",
    [
        ({"halpha_levels": [-1.0, -2.0]}, "halpha_levels must be strictly increasing"),
        ({"n_components": 4}, "n_components 4 is below level_min 2 x 5 H-alpha levels"),
    ],
    ids=["levels-not-increasing", "too-few-components-for-the-levels"],
)
def test_bad_posterior_levels_are_refused(proj, posterior, says):
    text = yaml.safe_dump(deep_merge(PARAMS, {"train": {"posterior": posterior}}))
    res, params = _train_with(proj, text)
    assert_fails(res, EXIT_USAGE, str(params), "train.posterior", says)


def test_too_few_interim_prior_draws_are_refused(proj):
    """The posterior MZR's interim density needs ``mzr.posterior_prior_draws`` >= 1000 prior draws."""
    text = yaml.safe_dump(deep_merge(PARAMS, {"mzr": {"posterior_prior_draws": 500}}))
    res, params = _train_with(proj, text)
    assert_fails(res, EXIT_USAGE, str(params), "mzr.posterior_prior_draws", "greater than or equal to 1000")
