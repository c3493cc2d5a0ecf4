"""Shared fixtures: the real configuration shrunk to a tiny universe (no mocks)."""

from __future__ import annotations

import os

import numpy as np
import pytest

os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")

from specdenoise.config import Params, parse_params  # noqa: E402

TINY = {
    "universe": {"n_galaxies": 3000, "seed": 11, "chunk_size": 50},
    "select": {"per_bin": 20, "n_test": 40, "seed": 5},
    "noise": {"n_realisations": 2, "seed": 9},
}

#: A small, fast-converging VAE (no search) for tests that need a trained de-noiser.
TINY_VAE_OVERRIDES = {
    "train": {"val_size": 60, "max_epochs": 40, "learning_rate": 1e-3, "batch_size": 32, "patience": 8,
              "vae": {"units": [64, 32], "dropout": 0.0}},
    "search": {"trials": 0},
    "uncertainty": {"n_samples": 20, "seed": 3, "window": 8},
}  # fmt: skip


@pytest.fixture(scope="session")
def tiny_params() -> Params:
    return parse_params(TINY)


@pytest.fixture(scope="session")
def tiny_catalogue(tiny_params):
    from specdenoise.sources.universe import draw_catalogue

    return draw_catalogue(tiny_params.universe)


@pytest.fixture(scope="session")
def tiny_sample(tiny_catalogue, tiny_params):
    from specdenoise.data.select import select_sample

    return select_sample(tiny_catalogue, tiny_params.select)


@pytest.fixture(scope="session")
def tiny_observed(tiny_sample, tiny_params):
    from specdenoise.sources.observe import observe

    sample, _ = tiny_sample
    obs = observe(sample, tiny_params.universe)
    obs["split"] = np.asarray(sample["split"].astype(str).tolist(), dtype="U8")
    return obs


@pytest.fixture(scope="session")
def tiny_processed(tiny_observed, tiny_params):
    from specdenoise.data.preprocess import preprocess

    pre = preprocess(tiny_observed, tiny_params.preprocess)
    pre["split"] = tiny_observed["split"]
    return pre


@pytest.fixture(scope="session")
def tiny_noisy(tiny_processed, tiny_params):
    from specdenoise.data.noise import add_noise

    return add_noise(tiny_processed["flux"], tiny_processed["wave"], tiny_params.noise, tiny_params.preprocess.norm)
