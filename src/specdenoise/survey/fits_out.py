"""The output data model of ``specdenoise denoise``: one FITS file per input file, built here only.

Layout (after desispec coadds and fastspecfit: image HDUs ``[NSPEC, NPIX]``, one table row
per target, provenance in the primary header)::

    HDU  EXTNAME     type      contents
    0    PRIMARY     header    provenance: package version, model URI/name/version/run,
                               training-parameters hash, calibration, options, quality bits
    1    WAVELENGTH  image     (NPIX,) rest-frame air wavelengths of the bin centres, Angstrom
    2    FLUX        image     (NSPEC, NPIX) de-noised flux, rest frame, BUNIT 1e-17 erg/(s cm2 A)
    3    SIGMA       image     (NSPEC, NPIX) 1-sigma uncertainty of FLUX (NaN: not available)
    4    INPUT       image     (NSPEC, NPIX) the model input: the observed spectrum in the rest
                               frame, resampled (noise added with --add-noise)
    5    IVAR        image     (NSPEC, NPIX) inverse variance of INPUT (0 = masked)
    6    MASK        image     (NSPEC, NPIX) uint8, 1 = bin not covered by the observation (its
                               FLUX is model output, not data) or the target was skipped
    7    CLEAN       image     (NSPEC, NPIX) only with --add-noise: INPUT before the noise
    8    METADATA    table     one row per target, same order as the image rows

Flux images are in physical units: divide by the row's ``NORM`` for the normalised units the
model works in. Rows of skipped targets (``QUALITY & SKIP_BITS``) are NaN with ``IVAR`` 0 and
``MASK`` 1. The ``METADATA`` columns are :data:`TABLE_COLUMNS` (plus ``TARGETID`` for DESI or
``PLATE``/``MJD``/``FIBERID`` for SDSS); ``QUALITY`` bits are :class:`~specdenoise.survey.quality.Quality`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from astropy.io import fits

from specdenoise.errors import DataError
from specdenoise.io import atomic_path
from specdenoise.survey.quality import header_cards
from specdenoise.version import __version__

FLUX_UNIT = "10**-17 erg/(s cm2 Angstrom)"
IVAR_UNIT = "10**+34 (s2 cm4 Angstrom2) / erg2"

#: The METADATA columns every output has: name -> (FITS format, unit, description).
TABLE_COLUMNS: dict[str, tuple[str, str, str]] = {
    "ID": ("32A", "", "target identifier (desi-TARGETID or sdss-PLATE-MJD-FIBER)"),
    "RA": ("D", "deg", "right ascension"),
    "DEC": ("D", "deg", "declination"),
    "Z": ("D", "", "redshift used for the rest frame"),
    "Z_SOURCE": ("8A", "", "origin of Z: file, redrock, catalog or none"),
    "SPECTYPE": ("16A", "", "spectral type (GALAXY, STAR, QSO; blank: unknown)"),
    "NORM": ("D", FLUX_UNIT, "normalisation divided out before the model"),
    "QUALITY": ("J", "", "quality bitmask (QUALBITn cards of HDU 0); 0 = good"),
    "CHI2_RED": ("E", "", "reduced chi2 of FLUX against INPUT (IVAR) over unmasked bins"),
    "CHI2_PRED": ("E", "", "as CHI2_RED with SIGMA^2 added to the variance (OUT_OF_DOMAIN)"),
    "MASKED_FRAC": ("E", "", "fraction of the rest-frame grid with MASK = 1"),
}
#: Survey identifier columns: name -> (FITS format, description).
ID_COLUMNS: dict[str, tuple[str, str]] = {
    "TARGETID": ("K", "DESI target id"),
    "PLATE": ("J", "SDSS plate"),
    "MJD": ("J", "SDSS MJD"),
    "FIBERID": ("J", "SDSS fiber"),
}


@dataclass
class DenoisedFile:
    """Everything one output file holds; arrays on the model grid in normalised units.

    Attributes
    ----------
    wave : ndarray (npix,)
    denoised, sigma, input, ivar : ndarray (nspec, npix), float32, normalised units
    mask : ndarray (nspec, npix) of bool
    clean : ndarray (nspec, npix) or None
    norm, chi2_red, chi2_pred, masked_frac : ndarray (nspec,)
    quality : ndarray (nspec,) of int
    block : SpectraBlock
        The input (ids, redshifts, spectral types, identifier columns).
    header : list of (key, value, comment)
        Provenance cards (:func:`provenance_cards`).
    """

    wave: np.ndarray
    denoised: np.ndarray
    sigma: np.ndarray
    input: np.ndarray
    ivar: np.ndarray
    mask: np.ndarray
    clean: np.ndarray | None
    norm: np.ndarray
    chi2_red: np.ndarray
    chi2_pred: np.ndarray
    masked_frac: np.ndarray
    quality: np.ndarray
    block: Any
    header: list[tuple[str, Any, str]]


def provenance_cards(den: Any, options: dict[str, Any], source: str, fmt: str, calibrated: bool) -> list:
    """Primary-header cards: package, model, calibration, preprocessing, options, input."""
    prov, pre = den.provenance, den.preprocess_cfg
    return [
        ("SDVERS", __version__, "specdenoise version"),
        ("MODELURI", str(prov.get("model_uri", "")), "model URI or directory given"),
        ("MODELNAM", str(prov.get("model_name") or ""), "registered model name"),
        ("MODELVER", str(prov.get("model_version") or ""), "registered model version"),
        ("RUNID", str(prov.get("run_id") or ""), "MLflow run id of the model"),
        ("PARHASH", str(prov.get("params_hash") or ""), "hash of the training parameters"),
        ("FAMILY", str(prov.get("family", "")), "model family"),
        ("LATDIM", int(prov.get("latent_dim", 0)), "latent dimension"),
        ("CALIB", bool(calibrated), "SIGMA calibrated on held-out data"),
        ("CALSRC", str(prov.get("calibration") or ""), "calibration record"),
        ("NORMKIND", pre.norm, "normalisation (NORM column)"),
        ("WAVEMIN", float(pre.wave_min), "[Angstrom] rest-frame grid start (air)"),
        ("WAVEMAX", float(pre.wave_max), "[Angstrom] rest-frame grid end (air)"),
        ("MINCOV", float(pre.min_coverage), "bin coverage below which MASK = 1"),
        ("INFILE", str(source), "input file"),
        ("INFORMAT", fmt, "input format"),
        ("ADDNOISE", float(options.get("add_noise") or 0.0), "sigma of added noise (0 = none)"),
        ("NSEED", int(options.get("seed", 0)), "seed of the added noise"),
        ("MAXMASK", float(options["max_masked"]), "UNCOVERED above this masked fraction"),
        ("OODCHI2", float(options["ood_chi2"]), "OUT_OF_DOMAIN above this CHI2_PRED"),
        ("ZMAX", float(options["z_max"]), "Z_RANGE at or above this redshift"),
    ]


def _set(hdr: fits.Header, key: str, value: Any, comment: str) -> None:
    """Set a card with as much of ``comment`` as fits in its 80 columns (never astropy's
    "Card is too long" warning; a long string value continues on CONTINUE cards, uncommented)."""
    text = repr(value) if isinstance(value, str) else str(value)
    room = 80 - 10 - max(20, len(text)) - 3  # key + "= ", value field, " / "
    hdr[key] = (value, comment[:room]) if room >= 8 and comment else value


def _image(name: str, data: np.ndarray, unit: str | None, what: str) -> fits.ImageHDU:
    hdu = fits.ImageHDU(data, name=name)
    if unit:
        _set(hdu.header, "BUNIT", unit, "")
    hdu.header["COMMENT"] = what
    return hdu


def _table(d: DenoisedFile, rows: np.ndarray) -> fits.BinTableHDU:
    b = d.block
    values = {
        "ID": np.asarray(b.ids)[rows],
        "RA": np.asarray(b.columns.get("RA", np.full(len(b), np.nan)), float)[rows],
        "DEC": np.asarray(b.columns.get("DEC", np.full(len(b), np.nan)), float)[rows],
        "Z": np.asarray(b.z, float)[rows],
        "Z_SOURCE": np.asarray(b.z_source)[rows],
        "SPECTYPE": np.asarray(b.spectype)[rows],
        "NORM": d.norm[rows],
        "QUALITY": d.quality[rows].astype(np.int32),
        "CHI2_RED": d.chi2_red[rows].astype(np.float32),
        "CHI2_PRED": d.chi2_pred[rows].astype(np.float32),
        "MASKED_FRAC": d.masked_frac[rows].astype(np.float32),
    }
    cols, notes = [], []
    for name, (fmt, desc) in ID_COLUMNS.items():
        if name in b.columns:
            cols.append(fits.Column(name, fmt, array=np.asarray(b.columns[name])[rows]))
            notes.append(desc)
    for name, (fmt, unit, desc) in TABLE_COLUMNS.items():
        cols.append(fits.Column(name, fmt, unit=unit or None, array=values[name]))
        notes.append(desc)
    hdu = fits.BinTableHDU.from_columns(cols, name="METADATA")
    for i, note in enumerate(notes, start=1):
        hdu.header.comments[f"TTYPE{i}"] = note[:47]
    return hdu


def build_hdulist(d: DenoisedFile, rows: np.ndarray | None = None) -> fits.HDUList:
    """The output HDUs for ``rows`` of ``d`` (all rows by default); see the module docstring."""
    rows = np.arange(len(d.norm)) if rows is None else np.asarray(rows)
    scale = d.norm[rows][:, None]
    with np.errstate(invalid="ignore", divide="ignore"):
        ivar = np.where(d.ivar[rows] > 0, d.ivar[rows] / scale**2, 0.0)
    hdr = fits.Header()
    for key, value, comment in d.header:
        _set(hdr, key, value, comment)
    _set(hdr, "NSPEC", len(rows), "targets (image rows, METADATA rows)")
    for key, value, comment in header_cards():
        _set(hdr, key, value, comment)
    hdr["COMMENT"] = "FLUX, SIGMA, INPUT: rest frame, physical units; divide by NORM for model units."
    hdr["COMMENT"] = "MASK=1: bin not covered by the observation (FLUX there is model output) or target skipped."
    hdus = [
        fits.PrimaryHDU(header=hdr),
        _image("WAVELENGTH", np.asarray(d.wave, np.float64), "Angstrom", "rest-frame air wavelength of bin centres"),
        _image("FLUX", (d.denoised[rows] * scale).astype(np.float32), FLUX_UNIT, "de-noised flux"),
        _image("SIGMA", (d.sigma[rows] * scale).astype(np.float32), FLUX_UNIT, "1-sigma uncertainty of FLUX"),
        _image("INPUT", (d.input[rows] * scale).astype(np.float32), FLUX_UNIT, "model input (rest frame)"),
        _image("IVAR", ivar.astype(np.float32), IVAR_UNIT, "inverse variance of INPUT (0 = masked)"),
        _image("MASK", d.mask[rows].astype(np.uint8), None, "1 = not covered or skipped"),
    ]
    if d.clean is not None:
        hdus.append(_image("CLEAN", (d.clean[rows] * scale).astype(np.float32), FLUX_UNIT, "INPUT before noise"))
    hdus.append(_table(d, rows))
    return fits.HDUList(hdus)


def check_no_inf(hdus: fits.HDUList, what: str) -> None:
    """No infinity is ever written (NaN marks skipped rows and missing SIGMA, as documented):
    raise :class:`DataError` naming ``what`` and the HDU."""
    for hdu in hdus:
        if isinstance(hdu, fits.ImageHDU) and hdu.data is not None and hdu.data.dtype.kind == "f":
            bad = np.isinf(hdu.data)
            if bad.any():
                raise DataError(f"{what}: {hdu.name} would hold {int(bad.sum())} infinite value(s); not written")


def write_denoised(path: Path, d: DenoisedFile, rows: np.ndarray | None = None, what: str | None = None) -> Path:
    """Write :func:`build_hdulist` to ``path`` atomically (temporary file, then rename)."""
    hdus = build_hdulist(d, rows)
    check_no_inf(hdus, what or str(path))
    with atomic_path(path, suffix=".fits") as tmp:
        hdus.writeto(tmp, overwrite=True)
    return path
