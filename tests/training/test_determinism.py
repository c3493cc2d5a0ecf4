"""Same machine, same parameters -> the same trained weights, bit for bit (seeded, deterministic ops)."""

from __future__ import annotations

import numpy as np
import pytest

from specdenoise.data.artefacts import NoisySet
from specdenoise.models import load_model
from specdenoise.training.train import model_seed, train_one


@pytest.fixture
def params(tiny_params):
    tc = tiny_params.train.model_copy(
        update={"val_size": 20, "max_epochs": 3, "ae": tiny_params.train.ae.model_copy(update={"units": [32, 16]})}
    )
    return tiny_params.model_copy(update={"train": tc, "search": tiny_params.search.model_copy(update={"trials": 0})})


def _weights(folder):
    return load_model(folder / "model").native_model().get_weights()


def test_training_twice_gives_identical_weights_and_losses(tmp_path, params, tiny_processed, tiny_noisy):
    noisy = NoisySet.from_arrays(tiny_noisy)
    for run in ("a", "b"):
        train_one("ae", 2, params, tiny_processed, noisy, tmp_path / run, tracking=False)
    wa, wb = _weights(tmp_path / "a"), _weights(tmp_path / "b")
    assert len(wa) == len(wb) > 0
    for x, y in zip(wa, wb, strict=True):
        assert x.tobytes() == y.tobytes()
    la, lb = np.load(tmp_path / "a/test_losses.npz"), np.load(tmp_path / "b/test_losses.npz")
    assert la["loss"].tobytes() == lb["loss"].tobytes()


@pytest.mark.slow
def test_another_seed_index_gives_other_weights(tmp_path, params, tiny_processed, tiny_noisy):
    noisy = NoisySet.from_arrays(tiny_noisy)
    train_one("ae", 2, params, tiny_processed, noisy, tmp_path / "s0", tracking=False)
    rec = train_one("ae", 2, params, tiny_processed, noisy, tmp_path / "s1", tracking=False, seed_index=1)
    assert rec["seed"] == model_seed(params, 2, 1) != model_seed(params, 2, 0) and rec["seed_index"] == 1
    assert any(
        x.tobytes() != y.tobytes() for x, y in zip(_weights(tmp_path / "s0"), _weights(tmp_path / "s1"), strict=True)
    )
