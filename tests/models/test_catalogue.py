"""The built-in families' catalogue: what ``params.yaml`` is validated against without importing
the families, and what ``tests/structure`` reads to give a ``--model NAME`` stage only NAME's code."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from specdenoise.config import TrainConfig
from specdenoise.errors import ConfigError
from specdenoise.models import get_family, load_builtin_families
from specdenoise.models.catalogue import BUILTIN
from specdenoise.models.sections import known_families


@pytest.mark.parametrize("name", sorted(BUILTIN))
def test_each_catalogue_entry_is_registered_by_its_module_with_its_settings(name):
    module, settings = BUILTIN[name]
    cls = get_family(name)
    assert cls.family == name
    assert cls.__module__ == module
    assert cls.settings_model is settings


def test_the_catalogue_lists_every_built_in_family():
    registered = {n: c for n, c in load_builtin_families().items() if c.__module__.startswith("specdenoise.")}
    assert set(registered) == set(BUILTIN)
    assert list(known_families())[: len(BUILTIN)] == list(BUILTIN)  # the sections' dump order


def test_validating_params_imports_no_family():
    """``specdenoise.config`` (every stage's entry) reads params.yaml with the catalogue alone."""
    code = (
        "import sys; from specdenoise.config import load_params; p = load_params('params.yaml'); "
        "assert p.train.ae.units and p.train.posterior.n_components; "
        "import json; print(json.dumps([m for m in sys.modules if m.startswith('specdenoise.models')]))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    loaded = set(json.loads(out))
    assert loaded.isdisjoint({f"specdenoise.models.{m}" for m in ("linear", "neural", "posterior")})


def test_an_unknown_section_or_family_is_one_clear_error():
    with pytest.raises(ConfigError, match="unknown model family 'gan'"):
        get_family("gan")
    with pytest.raises(ConfigError, match="unknown model family 'gan'"):
        TrainConfig().settings("gan")
