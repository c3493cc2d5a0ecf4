"""SDSS spectrum readers: DR8+ ``spec`` / ``spec-lite`` files and DR7 ``spSpec`` files.

``spec-PPPP-MMMMM-FFFF.fits`` (DR8 and later, including re-reductions of the SDSS-I/II plates)
-----------------------------------------------------------------------------------------------
* HDU 1 ``COADD`` (binary table, one row a pixel): ``flux`` (1e-17 erg/s/cm^2/A), ``loglam``
  (log10 vacuum wavelength in A), ``ivar``, ``and_mask`` (SPPIXMASK bits set in every
  exposure), ``or_mask``, ``wdisp``, ``sky``, ``model``.
* HDU 2 ``SPECOBJ`` (one row): ``Z``, ``Z_ERR``, ``ZWARNING``, ``CLASS``, ``PLATE``, ``MJD``,
  ``FIBERID``, ...
* HDU 3 ``SPZLINE``: the pipeline's Gaussian line fits (``LINENAME``, ``LINEWAVE``,
  ``LINEAREA``, ``LINEAREA_ERR``, ``LINEEW``, ...).
* HDU 4+ (``spec`` only, not ``spec-lite``): the individual exposures.

``spSpec-MMMMM-PPPP-FFF.fit`` (DR7 and earlier)
----------------------------------------------
The primary HDU is an image of shape (n_rows, n_pix): row 0 the flux, row 1 the
continuum-subtracted flux, row 2 the 1-sigma error (0 marks a bad pixel), row 3 the pixel
mask (SPPIXMASK). Wavelengths are ``10 ** (COEFF0 + COEFF1 * i)`` in vacuum; the header
carries ``Z``, ``Z_ERR``, ``PLATEID``, ``MJD``, ``FIBERID`` and ``SPEC_CLN``.

Both readers convert vacuum wavelengths to air (:func:`~specdenoise.survey.readers.spectrum.vac_to_air`)
and set ``ivar = 0`` on pixels with a bad SPPIXMASK bit (:data:`BAD_PIXEL_BITS`), a zero error
or a non-finite flux. Identifiers are ``sdss-PPPP-MMMMM-FFFF``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from specdenoise.errors import DataError
from specdenoise.survey.readers.fits import open_fits
from specdenoise.survey.readers.spectrum import Spectrum, vac_to_air

#: SPPIXMASK bits that make a pixel unusable (idlspec2d ``sdssMaskbits.par``): fibre problems
#: (NOPLUG 0, BADTRACE 1, BADFLAT 2, BADARC 3, MANYBADCOLUMNS 4, MANYREJECTED 5, LARGESHIFT 6)
#: and pixel problems (FULLREJECT 18, NOSKY 22, BRIGHTSKY 23, NODATA 24, COMBINEREJ 25,
#: BADFLUXFACTOR 26, BADSKYCHI 27). Informational bits (NEARBADPIXEL 16, LOWFLAT 17,
#: PARTIALREJECT 19, SCATTEREDLIGHT 20, CROSSTALK 21, and spectro1d's emission-line flag 30)
#: keep the pixel.
BAD_PIXEL_BITS = (0, 1, 2, 3, 4, 5, 6, 18, 22, 23, 24, 25, 26, 27)
BAD_PIXEL_MASK = int(sum(1 << b for b in BAD_PIXEL_BITS))


def sdss_id(plate: int, mjd: int, fiber: int) -> str:
    """The identifier of one SDSS spectrum: ``sdss-PPPP-MMMMM-FFFF``."""
    return f"sdss-{int(plate):04d}-{int(mjd):05d}-{int(fiber):04d}"


def _columns(hdu: Any, names: tuple[str, ...], path: Path) -> dict[str, np.ndarray]:
    cols = {c.lower(): c for c in hdu.columns.names}
    missing = [n for n in names if n.lower() not in cols]
    if missing:
        raise DataError(f"{path}: HDU {hdu.name or '?'} lacks column(s) {', '.join(missing)}")
    return {n: np.asarray(hdu.data[cols[n.lower()]]) for n in names}


def _air_wave(wave_vac: np.ndarray, path: Path) -> np.ndarray:
    if not np.all(np.isfinite(wave_vac)) or np.any(np.diff(wave_vac) <= 0):
        raise DataError(f"{path}: wavelengths are not finite and strictly increasing")
    if wave_vac[0] < 2000.0 or wave_vac[-1] > 20000.0:
        raise DataError(f"{path}: wavelengths {wave_vac[0]:.0f}-{wave_vac[-1]:.0f} A are not optical (units?)")
    return vac_to_air(wave_vac)


def _clean(flux: np.ndarray, ivar: np.ndarray, mask: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    flux = np.asarray(flux, dtype=float).copy()
    ivar = np.asarray(ivar, dtype=float).copy()
    bad = ~np.isfinite(flux) | ~np.isfinite(ivar) | (ivar < 0)
    if mask is not None:
        bad |= (np.asarray(mask).astype(np.int64) & BAD_PIXEL_MASK) != 0
    ivar[bad] = 0.0
    flux[~np.isfinite(flux)] = 0.0
    return flux, ivar


def _number(value: Any, field: str, path: Path, kind: type = float) -> Any:
    """``value`` (a header card or the first cell of a column) as ``kind``; a string, an empty
    cell or a non-finite number is a :class:`DataError` naming the file and the field."""
    v = np.asarray(value).ravel()
    if v.size == 0:
        raise DataError(f"{path}: {field} is empty")
    x = v[0]
    if isinstance(x, bytes | str) or v.dtype.kind not in "biuf":
        text = x.decode(errors="replace") if isinstance(x, bytes) else str(x)
        raise DataError(f"{path}: {field} is {text.strip()[:40]!r}, not a number")
    if not np.isfinite(x):
        raise DataError(f"{path}: {field} is {x}, not a finite number")
    if kind is int:
        if float(x) != int(x) or x < 0:
            raise DataError(f"{path}: {field} is {x}, not a non-negative integer")
        return int(x)
    return float(x)


def _scalar(value: Any) -> Any:
    v = np.asarray(value).ravel()
    if v.size == 0:
        return None
    x = v[0]
    if isinstance(x, bytes):
        return x.decode().strip()
    if isinstance(x, str):
        return x.strip()
    return x.item() if hasattr(x, "item") else x


def read_sdss_spec(path: str | Path, hdul: Any | None = None) -> list[Spectrum]:
    """Read an SDSS DR8+ ``spec`` or ``spec-lite`` file.

    Parameters
    ----------
    path : str or Path
        The FITS file (``.fits`` or ``.fits.gz``).
    hdul : astropy.io.fits.HDUList, optional
        The file already opened (by :func:`specdenoise.survey.readers.read_spectra`).

    Returns
    -------
    list of Spectrum
        One spectrum: air wavelengths (n_pix,) in A, flux in 1e-17 erg/s/cm^2/A, ivar with bad
        pixels set to 0, ``z`` from ``SPECOBJ``; ``meta`` holds plate, mjd, fiber, class,
        zwarning and the SPZLINE line fluxes (``meta["lines"]``: name -> flux, flux_err, ew,
        1e-17 erg/s/cm^2 and A).
    """
    path = Path(path)
    if hdul is None:
        with open_fits(path) as h:
            return read_sdss_spec(path, h)
    names = [h.name.upper() for h in hdul]
    coadd = hdul["COADD"] if "COADD" in names else (hdul[1] if len(hdul) > 1 else None)
    if coadd is None or not hasattr(coadd, "columns"):
        raise DataError(f"{path}: no COADD table (HDU 1) in this SDSS spec file")
    c = _columns(coadd, ("flux", "loglam", "ivar"), path)
    mask = None
    if "and_mask" in [n.lower() for n in coadd.columns.names]:
        mask = _columns(coadd, ("and_mask",), path)["and_mask"]
    if "SPECOBJ" in names:
        so = hdul["SPECOBJ"]
    elif len(hdul) > 2 and hasattr(hdul[2], "columns"):
        so = hdul[2]
    else:
        raise DataError(f"{path}: no SPECOBJ table (HDU 2): the redshift is missing")
    s = _columns(so, ("Z", "PLATE", "MJD", "FIBERID"), path)
    if len(s["Z"]) == 0:
        raise DataError(f"{path}: SPECOBJ table is empty")
    z = _number(s["Z"], "SPECOBJ.Z", path)
    plate, mjd, fiber = (_number(s[k], f"SPECOBJ.{k}", path, int) for k in ("PLATE", "MJD", "FIBERID"))
    if len(c["loglam"]) < 2:
        raise DataError(f"{path}: COADD table has {len(c['loglam'])} row(s); no spectrum")
    wave = _air_wave(10.0 ** np.asarray(c["loglam"], dtype=float), path)
    flux, ivar = _clean(c["flux"], c["ivar"], mask)
    so_cols = {n.upper(): n for n in so.columns.names}
    meta: dict[str, Any] = {
        "source": str(path),
        "survey": "sdss",
        "format": "spec-lite" if len(hdul) <= 4 else "spec",
        "wave_medium": "vacuum",
        "plate": plate,
        "mjd": mjd,
        "fiber": fiber,
        "n_masked": int((ivar == 0).sum()),
    }
    for key in ("Z_ERR", "ZWARNING", "CLASS", "SUBCLASS", "PLUG_RA", "PLUG_DEC", "SN_MEDIAN_ALL", "VDISP"):
        if key in so_cols:
            meta[key.lower()] = _scalar(so.data[so_cols[key]])
    if "SPZLINE" in names:
        meta["lines"] = _spzline(hdul["SPZLINE"])
    return [Spectrum(wave, flux, ivar, z, sdss_id(plate, mjd, fiber), meta)]


def _spzline(hdu: Any) -> dict[str, dict[str, float]]:
    cols = {n.upper() for n in hdu.columns.names}
    if not {"LINENAME", "LINEAREA", "LINEAREA_ERR"} <= cols:
        return {}
    out = {}
    for row in hdu.data:
        name = str(row["LINENAME"]).strip()
        out[name] = {
            "flux": float(row["LINEAREA"]),
            "flux_err": float(row["LINEAREA_ERR"]),
            "ew": float(row["LINEEW"]) if "LINEEW" in cols else float("nan"),
        }
    return out


def read_sdss_spspec(path: str | Path, hdul: Any | None = None) -> list[Spectrum]:
    """Read an SDSS DR7 (and earlier) ``spSpec`` file.

    Parameters
    ----------
    path : str or Path
        The FITS file.
    hdul : astropy.io.fits.HDUList, optional
        The file already opened.

    Returns
    -------
    list of Spectrum
        One spectrum: air wavelengths (n_pix,) in A, flux in 1e-17 erg/s/cm^2/A, ivar =
        1 / error^2 (0 where the error is 0 or the mask has a bad bit), ``z`` from the header.
    """
    path = Path(path)
    if hdul is None:
        with open_fits(path) as h:
            return read_sdss_spspec(path, h)
    hdr = hdul[0].header
    data = hdul[0].data
    if data is None or np.ndim(data) != 2 or data.shape[0] < 3:
        shape = None if data is None else data.shape
        raise DataError(
            f"{path}: spSpec primary image must have >= 3 rows (flux, continuum-subtracted, error), got shape {shape}"
        )
    missing = [k for k in ("COEFF0", "COEFF1", "Z") if k not in hdr]
    if missing:
        raise DataError(f"{path}: spSpec header lacks keyword(s) {', '.join(missing)}")
    plate_key = "PLATEID" if "PLATEID" in hdr else "PLATE"
    if hdr.get(plate_key) is None or hdr.get("MJD") is None or hdr.get("FIBERID") is None:
        raise DataError(f"{path}: spSpec header lacks PLATEID / MJD / FIBERID")
    plate = _number(hdr[plate_key], plate_key, path, int)
    mjd, fiber = _number(hdr["MJD"], "MJD", path, int), _number(hdr["FIBERID"], "FIBERID", path, int)
    z = _number(hdr["Z"], "Z", path)
    coeff0, coeff1 = _number(hdr["COEFF0"], "COEFF0", path), _number(hdr["COEFF1"], "COEFF1", path)
    data = np.asarray(data, dtype=float)
    n_pix = data.shape[1]
    loglam = coeff0 + coeff1 * np.arange(n_pix)
    medium = str(hdr.get("AIRORVAC", "vac")).strip().lower()
    wave = 10.0**loglam
    wave = _air_wave(wave, path) if medium.startswith("vac") else wave
    err = data[2]
    with np.errstate(divide="ignore", invalid="ignore"):
        ivar = np.where(np.isfinite(err) & (err > 0), 1.0 / err**2, 0.0)
    mask = data[3].astype(np.int64) if data.shape[0] > 3 else None
    flux, ivar = _clean(data[0], ivar, mask)
    meta: dict[str, Any] = {
        "source": str(path),
        "survey": "sdss",
        "format": "spSpec",
        "wave_medium": "vacuum" if medium.startswith("vac") else "air",
        "plate": int(plate),
        "mjd": int(mjd),
        "fiber": int(fiber),
        "n_masked": int((ivar == 0).sum()),
    }
    for key in ("Z_ERR", "Z_STATUS", "SPEC_CLN", "RAOBJ", "DECOBJ"):
        if key in hdr:
            meta[key.lower()] = hdr[key]
    return [Spectrum(wave, flux, ivar, z, sdss_id(plate, mjd, fiber), meta)]
