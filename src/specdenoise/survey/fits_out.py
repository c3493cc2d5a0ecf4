"""The FITS file written for each de-noised spectrum (``specdenoise denoise``); schema and
provenance cards in one place."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from astropy.io import fits

from specdenoise.errors import DataError
from specdenoise.io import atomic_path
from specdenoise.version import __version__


def check_finite(cols: list[Any], what: str) -> None:
    """No inf or NaN is ever written: raise :class:`DataError` naming ``what`` and the column.

    ``SIGMA`` may be NaN (no uncertainty: an uncalibrated model) but never infinite.
    """
    for c in cols:
        a = np.asarray(c.array)
        if a.dtype.kind != "f":
            continue
        bad = np.isinf(a) if c.name == "SIGMA" else ~np.isfinite(a)
        if bad.any():
            raise DataError(f"{what}: column {c.name} would hold {int(bad.sum())} non-finite value(s); not written")


def write_fits(path: Path, den: Any, res: Any, j: int, spec: Any, source: str, options: dict[str, Any]) -> Path:
    """One de-noised spectrum as a FITS binary table (``DENOISED``) with provenance, atomically."""
    cols = [
        fits.Column("WAVE", "E", unit="Angstrom", array=np.asarray(res.wave, np.float32)),
        fits.Column("FLUX_INPUT", "E", array=res.input[j]),
        fits.Column("IVAR_INPUT", "E", array=np.asarray(res.ivar[j], np.float32)),
        fits.Column("FLUX_DENOISED", "E", array=res.denoised[j]),
        fits.Column("SIGMA", "E", array=np.asarray(res.sigma[j], np.float32)),
        fits.Column("MASK", "B", array=res.mask[j].astype(np.uint8)),
    ]
    if res.clean is not None:
        cols.append(fits.Column("FLUX_CLEAN", "E", array=res.clean[j]))
    check_finite(cols, f"{source} ({spec.id})")
    table = fits.BinTableHDU.from_columns(cols, name="DENOISED")
    hdr = fits.Header()
    prov = den.provenance
    cards = [
        ("MODELURI", str(prov.get("model_uri", "")), "model URI given"),
        ("MODELNAM", str(prov.get("model_name") or ""), "model name"),
        ("MODELVER", str(prov.get("model_version") or ""), "registered model version"),
        ("RUNID", str(prov.get("run_id") or ""), "MLflow run id"),
        ("PARHASH", str(prov.get("params_hash") or ""), "hash of the training parameters"),
        ("FAMILY", str(prov.get("family", "")), "model family"),
        ("LATDIM", int(prov.get("latent_dim", 0)), "latent dimension"),
        ("PREPSRC", str(prov.get("preprocess_source", "")), "preprocessing source"),
        ("SDVERS", __version__, "specdenoise version"),
        ("INFILE", str(source), "input file"),
        ("SPECID", str(spec.id), "spectrum id"),
        ("Z", float(spec.z), "redshift used for the rest frame"),
        ("NORM", float(res.norm[j]), "x column = 1e-17 erg/s/cm2/A (rest)"),
        ("NORMKIND", den.preprocess_cfg.norm, "normalisation"),
        ("WMEDIUM", "air", "wavelengths: rest frame, air"),
        ("ADDNOISE", float(options["add_noise"] or 0.0), "sigma of added noise (0 = none)"),
        ("NSEED", int(options["seed"]), "seed of the added noise"),
        ("CALIB", bool(res.calibrated), "SIGMA calibrated on validation data"),
        ("CALSRC", str(prov.get("calibration") or ""), "calibration record"),
        ("MASKFRAC", float(res.mask[j].mean()), "fraction of bins with MASK=1"),
    ]
    for key, value, comment in cards:
        hdr[key] = (value, comment)
    hdr["COMMENT"] = "MASK=1: bin not covered by the observed spectrum; its values are model output, not data."
    with atomic_path(path, suffix=".fits") as tmp:
        fits.HDUList([fits.PrimaryHDU(header=hdr), table]).writeto(tmp, overwrite=True)
    return path
