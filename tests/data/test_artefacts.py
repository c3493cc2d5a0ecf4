"""The typed data products: one schema each, checked on load, written in a fixed order."""

from __future__ import annotations

import numpy as np
import pytest

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


def test_load_noisy_tells_the_gaussian_set_from_the_desi_like_one(tmp_path, tiny_noisy):
    NoisySet.from_arrays(tiny_noisy).save(tmp_path / "n.npz")
    assert type(load_noisy(tmp_path / "n.npz")) is NoisySet
    n_pix = tiny_noisy["noisy"].shape[2]
    one = np.ones(2)
    arrays = dict(
        noisy=np.zeros((1, 2, n_pix), np.float32),
        renorm=np.ones((1, 2)),
        sigma=np.ones(n_pix),
        ivar=np.ones((2, n_pix)),
        clean=np.ones((2, n_pix)),
        wave=np.arange(n_pix, dtype=float),
        id=np.arange(2),
        split=np.array(["train", "test"]),
        dimming=one,
        clean_norm=one,
        amplitude=np.float64(2.0),
        amplitude_coadds=np.float64(0.1),
        envelope_median=np.float64(0.04),
        z_desi=np.float64(0.1),
    )
    save_npz(tmp_path / "d.npz", **arrays)
    desi = load_noisy(tmp_path / "d.npz")
    assert type(desi) is DesiSet and float(desi.amplitude) == 2.0


def test_sample_columns_are_checked(tmp_path):
    import pandas as pd

    save_table(tmp_path / "s.parquet", pd.DataFrame({"id": [1], "z": [0.03]}))
    with pytest.raises(DataError, match=r"s\.parquet: missing column\(s\) class"):
        load_sample(tmp_path / "s.parquet", ("id", "class"))
