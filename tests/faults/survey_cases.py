"""Inputs for the survey fault cases: real SDSS spec-lite files (the COADD of a real ppxf SDSS
spectrum) damaged one field at a time, and a tiny trained PCA de-noiser."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits

from specdenoise.config import parse_params
from survey.survey_fixtures import write_spec_lite

Z = 0.004  # the real redshift of the ppxf NGC3522 spectrum


@pytest.fixture(scope="module")
def pca_model(tmp_path_factory, tiny_processed, tiny_noisy) -> Path:
    """A PCA de-noiser (4-D) trained on the tiny universe, saved as ``train`` saves it."""
    from specdenoise.training.train import train_one

    params = parse_params({"train": {"val_size": 40}, "search": {"trials": 0}})
    root = tmp_path_factory.mktemp("faults-model")
    train_one("pca", 4, params, tiny_processed, tiny_noisy, root / "pca_4", tracking=False)
    return root / "pca_4" / "model"


def good_spec(path: Path, fiber: int = 1, z: float = Z) -> Path:
    """A valid spec-lite file ``sdss-0266-51602-<fiber>``."""
    return write_spec_lite(path, 266, 51602, fiber, z)


def bad_spec(path: Path, specobj: dict | None = None, coadd: dict | None = None, empty_coadd: bool = False) -> Path:
    """A spec-lite file with SPECOBJ / COADD columns replaced: ``{name: (format, values)}``."""
    good_spec(path)
    with fits.open(path) as h:
        hdus = [fits.PrimaryHDU(header=h[0].header)]
        for hdu, over in ((h["COADD"], coadd or {}), (h["SPECOBJ"], specobj or {})):
            cols = []
            for c in hdu.columns:
                fmt, arr = over.get(c.name, (c.format, np.asarray(hdu.data[c.name])))
                if empty_coadd and hdu.name == "COADD":
                    arr = np.asarray(arr)[:0]
                cols.append(fits.Column(name=c.name, format=fmt, array=arr))
            hdus.append(fits.BinTableHDU.from_columns(cols, name=hdu.name))
        hdus.append(h["SPZLINE"].copy())
        fits.HDUList(hdus).writeto(path, overwrite=True)
    return path


def scaled_flux(path: Path, value: float, pixels: slice = slice(None)) -> Path:
    """A spec-lite file whose COADD flux is ``value`` on ``pixels`` (as stored: float32)."""
    good_spec(path)
    with fits.open(path) as h:
        flux = np.asarray(h["COADD"].data["flux"]).copy()
    flux[pixels] = value
    return bad_spec(path, coadd={"flux": ("E", flux)})
