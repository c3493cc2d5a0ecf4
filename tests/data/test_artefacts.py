"""The typed data products: one schema each, checked on load, written in a fixed order."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import desi_set
from specdenoise.data.artefacts import DesiSet, NoisySet, Observed, Spectra, load_noisy, load_sample
from specdenoise.errors import DataError
from specdenoise.io import save_npz, save_table


def test_spectra_round_trip_keeps_arrays_and_file_order(tmp_path, tiny_processed):
    path = Spectra.from_arrays(tiny_processed).save(tmp_path / "s.npz")
    with np.load(path) as z:
        assert z.files == ["wave", "flux", "ivar", "norm", "coverage", "id", "z", "truth", "split"]
    again = Spectra.load(path)
    np.testing.assert_array_equal(again.flux, tiny_processed["flux"])
    assert again["split"] is again.split and "truth" in again and len(again) == 9
    # written again from the loaded product: the same bytes
    assert (again.save(tmp_path / "t.npz")).read_bytes() == path.read_bytes()


def test_missing_arrays_name_the_file_and_the_product(tmp_path):
    save_npz(tmp_path / "bad.npz", wave=np.arange(3.0), flux=np.ones((2, 3)))
    with pytest.raises(DataError, match=r"bad\.npz: not a preprocessed-spectra file: missing array\(s\) ivar, norm$"):
        Spectra.load(tmp_path / "bad.npz")
    with pytest.raises(
        DataError, match=r"bad\.npz: not a noise-realisations file: missing array\(s\) noisy, renorm, sigma"
    ):
        load_noisy(tmp_path / "bad.npz")
    with pytest.raises(DataError, match=r"nope\.npz: file not found"):
        Observed.load(tmp_path / "nope.npz")
    pre = Spectra.from_arrays(
        {"wave": np.arange(3.0), "flux": np.ones((1, 3)), "ivar": np.ones((1, 3)), "norm": np.ones(1)}
    )
    with pytest.raises(DataError, match=r"^x\.npz: missing array\(s\) truth, split$"):
        pre.require("truth", "split", source="x.npz")


def test_load_noisy_tells_the_gaussian_set_from_the_desi_like_one(tmp_path, tiny_processed, tiny_noisy):
    NoisySet.from_arrays(tiny_noisy).save(tmp_path / "n.npz")
    assert type(load_noisy(tmp_path / "n.npz")) is NoisySet
    desi_set(tiny_processed, tiny_noisy, amplitude=2.0).save(tmp_path / "d.npz")
    desi = load_noisy(tmp_path / "d.npz")
    assert type(desi) is DesiSet and float(desi.amplitude) == 2.0


def test_sample_columns_are_checked(tmp_path):
    import pandas as pd

    save_table(tmp_path / "s.parquet", pd.DataFrame({"id": [1], "z": [0.03]}))
    with pytest.raises(DataError, match=r"s\.parquet: missing column\(s\) class"):
        load_sample(tmp_path / "s.parquet", ("id", "class"))
