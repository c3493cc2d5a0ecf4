"""Seed-pooled cells, paired-bootstrap CIs and tie-group ranks on hand-made losses with known answers."""

from __future__ import annotations

import json

import numpy as np
import pytest

from specdenoise.evaluation import headline, rankings
from specdenoise.models import store


def _cell(key, loss, sd, family="ae", level=0.04):
    fam, dim = key.split("_")
    return {
        "key": key,
        "family": family or fam,
        "latent_dim": int(dim),
        "level": level,
        "test_loss": float(np.mean(loss)),
        "test_loss_sd": sd,
        "sd_used": sd,
        "_loss": np.asarray(loss, dtype=float),
    }


def test_paired_ci_of_a_constant_difference_is_that_constant():
    a = np.linspace(10, 20, 50)
    idx = rankings.bootstrap_indices(50, 300, seed=1)
    diff, lo, hi = rankings.paired_ci(a + 3.0, a, idx)
    assert diff == pytest.approx(3.0) and lo == pytest.approx(3.0) and hi == pytest.approx(3.0)


def test_paired_ci_brackets_zero_for_pure_noise_differences():
    rng = np.random.default_rng(0)
    a = rng.normal(100, 10, 2000)
    b = a + rng.normal(0, 5, 2000)
    idx = rankings.bootstrap_indices(2000, 500, seed=2)
    diff, lo, hi = rankings.paired_ci(b, a, idx)
    assert lo < diff < hi and lo < 0.5 and hi > -0.5


def test_clear_gap_beyond_two_seed_sd_gets_its_own_rank():
    base = np.linspace(90, 110, 200)
    cells = [_cell("ae_6", base, 1.0), _cell("vae_6", base + 10.0, 1.0, family="vae")]
    idx = rankings.bootstrap_indices(200, 300, seed=3)
    ordered = rankings.rank_level(cells, idx, sd_factor=2.0)
    assert [c["key"] for c in ordered] == ["ae_6", "vae_6"]
    assert [c["rank"] for c in ordered] == [1, 2] and not any(c["tied"] for c in ordered)
    assert ordered[1]["ci_vs_leader"][0] == pytest.approx(10.0)


def test_significant_gap_within_two_seed_sd_is_a_tie():
    base = np.linspace(90, 110, 200)
    # the CI excludes 0 (the difference is exactly 10 everywhere) but the seeds scatter by 6
    cells = [_cell("ae_6", base, 6.0), _cell("vae_6", base + 10.0, 6.0, family="vae")]
    ordered = rankings.rank_level(cells, rankings.bootstrap_indices(200, 300, seed=3), sd_factor=2.0)
    assert [c["rank"] for c in ordered] == [1, 1] and all(c["tied"] for c in ordered)


def test_gap_whose_ci_includes_zero_is_a_tie_even_with_zero_sd():
    rng = np.random.default_rng(5)
    base = rng.normal(100, 20, 300)
    other = base + rng.normal(0, 20, 300)
    other += np.mean(base) - np.mean(other) + 0.01  # mean difference 0.01, noise 20 per spectrum
    cells = [_cell("pca_6", base, 0.0, family="pca"), _cell("wiener_6", other, 0.0, family="wiener")]
    ordered = rankings.rank_level(cells, rankings.bootstrap_indices(300, 500, seed=4), sd_factor=2.0)
    assert ordered[1]["ci_vs_leader"][0] < 0 < ordered[1]["ci_vs_leader"][1]
    assert [c["rank"] for c in ordered] == [1, 1]


def test_tie_groups_compare_with_the_group_leader():
    base = np.full(100, 100.0)
    cells = [_cell(f"ae_{d}", base + off, 1.0) for d, off in ((2, 0.0), (4, 1.5), (6, 3.0), (10, 30.0))]
    ordered = rankings.rank_level(cells, rankings.bootstrap_indices(100, 200, seed=1), sd_factor=2.0)
    # 4 (gap 1.5) and 6 (gap 3.0 > 2) vs leader 2: 4 ties, 6 starts group 3; 10 starts group 4
    assert [c["rank"] for c in ordered] == [1, 1, 3, 4]


def _fake_model(root, name, loss, run_id):
    d = root / name
    (d / store.MODEL).mkdir(parents=True)
    n = len(loss)
    np.savez(
        d / store.TEST_LOSSES,
        loss=np.asarray(loss, dtype=float),
        loss_truth=np.asarray(loss, dtype=float) / 2,
        input_loss=np.full(n, 1000.0),
        input_loss_truth=np.full(n, 900.0),
        index=np.arange(n),
    )
    (d / store.METRICS).write_text(json.dumps({"run_id": run_id, "experiment_id": "1"}))


def test_cells_pool_seeds_and_levels_from_the_store(tmp_path):
    _fake_model(tmp_path, "ae_6", [100.0, 110.0], "r0")
    axis = store.axis_dir(tmp_path, "ae", 6)
    _fake_model(axis, "ae_6_s1", [104.0, 114.0], "r1")
    _fake_model(axis, "ae_6_s2", [102.0, 112.0], "r2")
    _fake_model(axis, "ae_6_n0.01_s0", [20.0, 30.0], "r3")
    _fake_model(tmp_path, "pca_6", [300.0, 300.0], "r4")
    cells = rankings.build_cells(store.list_models(tmp_path), paper_sigma=0.04)
    by = {(c["key"], c["level"]): c for c in cells}
    ae = by[("ae_6", 0.04)]
    assert ae["n_seeds"] == 3 and ae["test_loss"] == pytest.approx(107.0)
    assert ae["test_loss_sd"] == pytest.approx(np.std([105.0, 109.0, 107.0], ddof=1))
    np.testing.assert_allclose(ae["_loss"], [102.0, 112.0])
    assert [s["run_id"] for s in ae["seeds"]] == ["r0", "r1", "r2"]
    low = by[("ae_6", 0.01)]
    assert low["n_seeds"] == 1 and low["test_loss_sd"] is None
    assert low["sd_used"] == pytest.approx(ae["test_loss_sd"]) and low["sd_source"] == "largest sd of the family"
    assert by[("pca_6", 0.04)]["sd_used"] == 0.0  # PCA's fit takes no seed
    ranks = rankings.rank_all(cells, 200, 1, 2.0)
    assert ranks == {"0.01": ["ae_6"], "0.04": ["ae_6", "pca_6"]}
    classes = rankings.per_class(cells, np.array(["emission_line", "quiescent"]))
    assert classes["0.04"]["ae_6"] == {"emission_line": pytest.approx(102.0), "quiescent": pytest.approx(112.0)}
    assert classes["0.04"]["n"] == {"emission_line": 1, "quiescent": 1}
    m = headline.metrics_json(cells, 0.04, {"levels": {"0.04": {"snr_median": 0.894}, "0.01": {"snr_median": 3.63}}})
    assert m["s0_04"]["ae_6"] == pytest.approx(107.0) and m["s0_04"]["ae_6_sd"] == pytest.approx(2.0)
    assert m["s0_01"] == {"ae_6": 25.0}
    assert m["snr"] == {"s0_04": 0.894, "s0_01": 3.63}
    assert m["champion"] == "ae_6" and m["champion_ties"] == 0
    by_dim, by_level = headline.plot_tables(cells, 0.04)
    assert by_dim.splitlines()[0] == "latent_dim,ae,ae_sd,pca,pca_sd"
    assert by_level.splitlines()[1].startswith("0.01,25,")


def test_models_tested_on_other_spectra_are_refused(tmp_path):
    _fake_model(tmp_path, "ae_6", [100.0, 110.0], "r0")
    _fake_model(store.axis_dir(tmp_path, "ae", 6), "ae_6_s1", [100.0, 110.0, 5.0], "r1")
    with pytest.raises(ValueError, match="test spectra differ"):
        rankings.build_cells(store.list_models(tmp_path), paper_sigma=0.04)
