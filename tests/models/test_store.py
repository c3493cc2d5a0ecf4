"""Model identity in the store: family, latent dim, noise level, seed; the matching noisy set."""

from __future__ import annotations

from pathlib import Path

import pytest

from specdenoise.errors import DataError
from specdenoise.models import store


@pytest.mark.parametrize(
    ("name", "family", "dim", "level", "seed"),
    [
        ("vae_6", "vae", 6, None, 0),
        ("vae_6_s2", "vae", 6, None, 2),
        ("ae_10_n0.005_s1", "ae", 10, 0.005, 1),
        ("my_family_4", "my_family", 4, None, 0),
    ],
)
def test_names_round_trip(name, family, dim, level, seed):
    tm = store.TrainedModel.at(Path("/m") / name)
    assert (tm.family, tm.latent_dim, tm.noise_level, tm.seed) == (family, dim, level, seed)
    assert store.key(family, dim, level, seed) == name
    assert tm.is_paper == (level is None and seed == 0)
    assert tm.cell == f"{family}_{dim}"


def test_a_folder_without_a_dimension_is_refused():
    with pytest.raises(DataError, match="not a trained-model folder"):
        store.TrainedModel.at("/m/vae")


def test_list_models_finds_the_axis_folders_and_the_matching_noisy_set(tmp_path):
    for rel in ("pca_6", "vae_6", "vae_6_axis/vae_6_s1", "vae_6_axis/vae_6_n0.01_s0", "vae_6_axis/.x_6_s1.partial"):
        (tmp_path / rel / store.MODEL).mkdir(parents=True)
    names = [tm.name for tm in store.list_models(tmp_path)]
    assert names == ["pca_6", "vae_6", "vae_6_s1", "vae_6_n0.01_s0"]
    assert [tm.name for tm in store.list_models(tmp_path, paper_only=True)] == ["pca_6", "vae_6"]
    low = store.list_models(tmp_path)[-1]
    assert low.level(0.04) == 0.01
    assert store.noisy_path(low, 0.04, "noisy.npz", "levels") == Path("levels/sigma_0.01.npz")
    assert store.noisy_path(store.list_models(tmp_path)[1], 0.04, "noisy.npz", "levels") == Path("noisy.npz")
