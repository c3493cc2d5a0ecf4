"""Survey spectrum readers: SDSS spec-lite / DR7 spSpec, DESI coadds, MPA-JHU catalogues.

:func:`read_spectra` opens any supported FITS file, recognises its format from its HDUs and
returns a list of :class:`Spectrum` (observed-frame air wavelengths in A, flux in
1e-17 erg/s/cm^2/A, inverse variance, redshift, id, provenance):

==============================  =====================================================  ===========================
format                          recognised by                                          reader
==============================  =====================================================  ===========================
SDSS DR8+ ``spec`` / spec-lite  a ``COADD`` table with ``flux``/``loglam``/``ivar``    :func:`.sdss.read_sdss_spec`
SDSS DR7 ``spSpec``             a 2-D primary image with ``COEFF0``/``COEFF1``         :func:`.sdss.read_sdss_spspec`
DESI coadd                      ``B_FLUX`` / ``R_FLUX`` / ``Z_FLUX`` HDUs              :func:`.desi.read_desi_coadd`
==============================  =====================================================  ===========================

Anything else, a corrupt or truncated FITS file, or a file that lacks a required HDU or
column, raises :class:`~specdenoise.errors.DataError` naming the file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from specdenoise.errors import DataError
from specdenoise.survey.readers.desi import read_desi_block, read_desi_coadd
from specdenoise.survey.readers.fits import open_fits
from specdenoise.survey.readers.sdss import read_sdss_spec, read_sdss_spspec
from specdenoise.survey.readers.spectrum import SpectraBlock, Spectrum, vac_to_air

__all__ = [
    "Spectrum",
    "SpectraBlock",
    "vac_to_air",
    "read_spectra",
    "read_block",
    "detect_format",
    "open_fits",
    "FORMATS",
]

#: Formats :func:`read_spectra` recognises.
FORMATS = ("sdss-spec", "sdss-spspec", "desi-coadd")
_DESI_HDUS = {"B_FLUX", "R_FLUX", "Z_FLUX"}


def detect_format(hdul: Any) -> str | None:
    """The format of an opened FITS file (one of :data:`FORMATS`), or None if unknown."""
    names = {h.name.upper() for h in hdul}
    if names & _DESI_HDUS:
        return "desi-coadd"
    for hdu in list(hdul)[1:2] + [h for h in hdul if h.name.upper() == "COADD"]:
        cols = {c.lower() for c in getattr(getattr(hdu, "columns", None), "names", None) or []}
        if {"flux", "loglam"} <= cols:
            return "sdss-spec"
    hdr = hdul[0].header
    if hdr.get("NAXIS", 0) == 2 and "COEFF0" in hdr and "COEFF1" in hdr:
        return "sdss-spspec"
    return None


def read_spectra(path: str | Path) -> list[Spectrum]:
    """Read every spectrum of a survey FITS file, whatever its (supported) format.

    Parameters
    ----------
    path : str or Path
        An SDSS ``spec``/``spec-lite`` or ``spSpec`` file, or a DESI coadd (``.fits`` or
        ``.fits.gz``).

    Returns
    -------
    list of Spectrum
        Observed-frame spectra: ``wave`` (n_pix,) air A, ``flux`` (n_pix,) in
        1e-17 erg/s/cm^2/A, ``ivar`` (n_pix,) with 0 on masked pixels, ``z``, ``id`` and
        ``meta`` (``source``, ``survey``, ``format``, ``wave_medium``, ...).

    Raises
    ------
    DataError
        Missing, corrupt, truncated or unrecognised file, or a missing HDU / column; the
        message names the file.
    """
    path = Path(path)
    with open_fits(path) as hdul:
        fmt = detect_format(hdul)
        if fmt == "sdss-spec":
            return read_sdss_spec(path, hdul)
        if fmt == "sdss-spspec":
            return read_sdss_spspec(path, hdul)
        if fmt == "desi-coadd":
            return read_desi_coadd(path)
        hdus = ", ".join(f"{i}:{h.name or '?'}" for i, h in enumerate(hdul))
        raise DataError(
            f"{path}: unrecognised spectrum format (HDUs {hdus}); expected an SDSS spec/spec-lite "
            "(COADD table), an SDSS DR7 spSpec (primary image with COEFF0/COEFF1) or a DESI coadd (B/R/Z_FLUX)"
        )


def read_block(path: str | Path) -> SpectraBlock:
    """Read a survey file as one :class:`SpectraBlock` (every spectrum on one shared grid).

    A DESI coadd is read as arrays directly (no per-target objects); an SDSS file holds one
    spectrum. Redshifts come from the file (SDSS ``SPECOBJ`` / header) or the Redrock file
    beside a DESI coadd; spectral types from SDSS ``CLASS`` or Redrock ``SPECTYPE``.

    Raises
    ------
    DataError
        As :func:`read_spectra`.
    """
    path = Path(path)
    with open_fits(path) as hdul:
        fmt = detect_format(hdul)
    if fmt == "desi-coadd":
        return read_desi_block(path)
    spectra = read_spectra(path)
    return block_from_spectra(spectra, path)


#: SDSS DR7 ``SPEC_CLN`` codes -> spectral type (0 unknown, 5 sky).
SPEC_CLN = {1: "STAR", 2: "GALAXY", 3: "QSO", 4: "QSO", 5: "SKY", 6: "STAR", 7: "GALAXY"}


def _spectype(meta: dict[str, Any]) -> str:
    if meta.get("class"):
        return str(meta["class"]).strip().upper()
    if meta.get("spec_cln") is not None:
        return SPEC_CLN.get(int(meta["spec_cln"]), "")
    return ""


def block_from_spectra(spectra: list[Spectrum], path: str | Path) -> SpectraBlock:
    """Spectra on one shared wavelength grid (SDSS files: one spectrum) as a :class:`SpectraBlock`."""
    if not spectra:
        raise DataError(f"{path}: no spectra in file")
    wave = spectra[0].wave
    if any(len(s.wave) != len(wave) or not np.array_equal(s.wave, wave) for s in spectra[1:]):
        raise DataError(f"{path}: spectra on different wavelength grids in one file")
    m0 = spectra[0].meta

    def col(*keys: str) -> np.ndarray:
        return np.array([float(next((s.meta[k] for k in keys if s.meta.get(k) is not None), np.nan)) for s in spectra])

    columns: dict[str, np.ndarray] = {}
    if m0.get("survey") == "sdss":
        for key in ("plate", "mjd", "fiber"):
            columns["FIBERID" if key == "fiber" else key.upper()] = np.array(
                [int(s.meta.get(key, -1)) for s in spectra], dtype=np.int32
            )
    columns["RA"], columns["DEC"] = col("plug_ra", "raobj"), col("plug_dec", "decobj")
    spectype = np.array([_spectype(s.meta) for s in spectra], dtype="U16")
    z = np.array([s.z for s in spectra], dtype=float)
    meta = {k: m0.get(k) for k in ("survey", "format", "wave_medium")}
    meta["source"] = str(path)
    return SpectraBlock(
        wave,
        np.vstack([s.flux for s in spectra]),
        np.vstack([s.ivar for s in spectra]),
        z,
        [s.id for s in spectra],
        spectype,
        np.where(np.isfinite(z), "file", "none").astype("U8"),
        columns,
        meta,
    )
