import numpy as np
import pandas as pd
import pytest

from specdenoise.config import SelectConfig
from specdenoise.data.select import assign_bins, bin_edges, select_sample
from specdenoise.errors import DataError


def _catalogue(n=30000, seed=0):
    rng = np.random.default_rng(seed)
    logf = rng.uniform(-0.5, 3.6, n)
    return pd.DataFrame(
        {"id": np.arange(n), "Halpha_flux_meas": 10**logf, "class": rng.choice(["emission_line", "absorption"], n)}
    )


def test_bin_edges_and_assignment():
    cfg = SelectConfig()
    edges = bin_edges(cfg)
    np.testing.assert_allclose(edges, np.linspace(0.2, 3.4, 11))
    f = 10 ** np.array([0.1, 0.2, 0.5, 3.39, 3.4, 5.0])
    assert assign_bins(np.append(f, [-1.0, 0.0]), cfg).tolist() == [-1, 0, 0, 9, -1, -1, -1, -1]


def test_each_bin_gets_its_quota_and_the_test_set_is_fixed():
    cfg = SelectConfig(per_bin=100, n_test=200, seed=3)
    sample, rep = select_sample(_catalogue(), cfg)
    assert sample["bin"].value_counts().to_dict() == {b: 100 for b in range(10)}
    assert rep["n_selected"] == 1000 and rep["n_test"] == 200 and rep["n_train"] == 800
    assert (sample.groupby("bin")["split"].apply(lambda s: (s == "test").sum()) == 20).all()
    assert sample["id"].is_unique
    logf = np.log10(sample["Halpha_flux_meas"])
    assert np.all((logf >= 0.2 + sample["bin"] * 0.32 - 1e-9) & (logf < 0.2 + (sample["bin"] + 1) * 0.32 + 1e-9))
    again, _ = select_sample(_catalogue(), cfg)
    pd.testing.assert_frame_equal(sample, again)
    other, _ = select_sample(_catalogue(), SelectConfig(per_bin=100, n_test=200, seed=4))
    assert set(other["id"]) != set(sample["id"])


def test_short_bins_are_reported_not_padded():
    cat = _catalogue(3000)
    cat = cat[~(np.log10(cat.Halpha_flux_meas) > 3.08)]  # empty the top bin
    cat = pd.concat([cat, cat.iloc[:0]])
    sample, rep = select_sample(cat, SelectConfig(per_bin=200, n_test=400))
    assert rep["short_bins"] and 9 in rep["short_bins"]
    top = [b for b in rep["bins"] if b["bin"] == 9][0]
    assert top["selected"] == 0 and top["shortfall"] == 200
    assert (sample["bin"] == 9).sum() == 0
    assert all(b["selected"] <= 200 for b in rep["bins"])


def test_class_restriction_and_errors():
    sample, _ = select_sample(_catalogue(), SelectConfig(per_bin=50, n_test=100, classes=["absorption"]))
    assert set(sample["class"]) == {"absorption"}
    with pytest.raises(DataError, match="unknown class"):
        select_sample(_catalogue(), SelectConfig(per_bin=50, n_test=100, classes=["quasar"]))
    with pytest.raises(DataError, match="missing column 'Halpha_flux_meas'"):
        select_sample(pd.DataFrame({"id": [1]}), SelectConfig())
