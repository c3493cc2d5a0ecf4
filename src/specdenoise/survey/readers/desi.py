"""DESI coadd spectra (``coadd-*.fits``): the B, R and Z arms merged with inverse variance.

A DESI coadd holds, for every target (row of ``FIBERMAP``), three arms on their own linear
wavelength grids (vacuum A, 0.8 A pixels; the arms overlap near 5800 and 7600 A). The arms
share one pixel lattice, so merging puts every arm pixel on the union grid and combines
overlapping pixels with inverse-variance weights. Redshifts are not in the coadd: they come from
the Redrock file beside it (``redrock-<same suffix>.fits``, HDU ``REDSHIFTS``, matched by
``TARGETID``; an older ``zbest-`` file is read too), or from ``z`` given by the caller; otherwise
``z`` is NaN. :func:`read_desi_block` returns the whole file as arrays (the fast path of
``specdenoise denoise``); :func:`read_desi_coadd` as a list of spectra.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from astropy.io import fits

from specdenoise.errors import DataError
from specdenoise.survey.readers.spectrum import SpectraBlock, Spectrum, vac_to_air

ARMS = ("B", "R", "Z")


def merge_arms(
    waves: list[np.ndarray], fluxes: list[np.ndarray], ivars: list[np.ndarray]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Inverse-variance merge of spectrograph arms that share a pixel lattice.

    Parameters
    ----------
    waves : list of ndarray, each (n_arm_pix,)
        Wavelengths of each arm (A).
    fluxes, ivars : list of ndarray, each (n_spec, n_arm_pix)
        Flux and inverse variance of each arm.

    Returns
    -------
    wave : ndarray (n_pix,)
        Union grid (A).
    flux, ivar : ndarray (n_spec, n_pix)
        Merged flux (ivar-weighted mean where arms overlap) and summed inverse variance.
    """
    keys = [np.round(np.asarray(w, dtype=float), 3) for w in waves]
    wave = np.unique(np.concatenate(keys))
    n = fluxes[0].shape[0]
    num = np.zeros((n, len(wave)))
    den = np.zeros((n, len(wave)))
    for k, f, iv in zip(keys, fluxes, ivars, strict=True):
        idx = np.searchsorted(wave, k)
        f = np.asarray(f, dtype=float)
        iv = np.where(np.isfinite(iv) & np.isfinite(f) & (iv > 0), iv, 0.0)
        fw = np.where(iv > 0, f, 0.0) * iv
        if len(idx) and idx[-1] - idx[0] == len(idx) - 1:  # a run of the union grid (DESI arms): slices
            num[:, idx[0] : idx[-1] + 1] += fw
            den[:, idx[0] : idx[-1] + 1] += iv
        elif len(np.unique(idx)) == len(idx):  # one arm's pixels are distinct: plain fancy add
            num[:, idx] += fw
            den[:, idx] += iv
        else:
            np.add.at(num, (slice(None), idx), fw)
            np.add.at(den, (slice(None), idx), iv)
    flux = np.divide(num, np.where(den > 0, den, 1.0), out=num)  # num is +0 wherever den is 0
    return wave, flux, den


def redshift_file(path: Path) -> Path | None:
    """The Redrock (``redrock-*``) or older ``zbest-*`` file beside a ``coadd-*`` file, if any."""
    if not path.name.startswith("coadd-"):
        return None
    for prefix in ("redrock-", "zbest-"):
        cand = path.with_name(path.name.replace("coadd-", prefix, 1))
        if cand.exists():
            return cand
    return None


def read_redrock(rr: Path) -> dict[int, tuple[float, str]]:
    """``TARGETID -> (Z, SPECTYPE)`` of a Redrock / zbest file (HDU ``REDSHIFTS`` or ``ZBEST``)."""
    try:
        with fits.open(rr, memmap=False) as h:
            names = {x.name for x in h}
            d = h["REDSHIFTS" if "REDSHIFTS" in names else "ZBEST"].data
            types = d["SPECTYPE"] if "SPECTYPE" in d.columns.names else [""] * len(d)
            return {
                int(t): (float(z), str(s).strip().upper()) for t, z, s in zip(d["TARGETID"], d["Z"], types, strict=True)
            }
    except (OSError, KeyError, ValueError, TypeError) as exc:
        raise DataError(f"{rr}: cannot read REDSHIFTS ({exc})") from None


def _redshifts(path: Path) -> dict[int, float]:
    rr = redshift_file(path)
    return {} if rr is None else {t: zt[0] for t, zt in read_redrock(rr).items()}


def _read_arms(path: Path) -> tuple[list, list, list, list, Any]:
    """Wavelengths, flux, ivar and mask of the B/R/Z arms, and the FIBERMAP table."""
    try:
        hdul = fits.open(path, memmap=False)
    except (OSError, ValueError) as exc:
        raise DataError(f"{path}: not a readable FITS file ({exc})") from None
    with hdul:
        names = {h.name for h in hdul}
        need = [f"{a}_{k}" for a in ARMS for k in ("WAVELENGTH", "FLUX", "IVAR")] + ["FIBERMAP"]
        missing = [n for n in need if n not in names]
        if missing:
            raise DataError(f"{path}: DESI coadd lacks HDU(s) {', '.join(missing)}")
        try:
            waves = [np.asarray(hdul[f"{a}_WAVELENGTH"].data, dtype=float) for a in ARMS]
            fluxes = [np.atleast_2d(np.asarray(hdul[f"{a}_FLUX"].data, dtype=float)) for a in ARMS]
            ivars = [np.atleast_2d(np.asarray(hdul[f"{a}_IVAR"].data, dtype=float)) for a in ARMS]
            masks = [np.atleast_2d(np.asarray(hdul[f"{a}_MASK"].data)) if f"{a}_MASK" in names else None for a in ARMS]
            fibermap = hdul["FIBERMAP"].data
            targetid = np.asarray(fibermap["TARGETID"], dtype=np.int64)
            cols = {c.upper(): c for c in fibermap.columns.names}
            radec = [
                np.asarray(fibermap[cols[c]], dtype=float) if c in cols else np.full(len(targetid), np.nan)
                for c in ("TARGET_RA", "TARGET_DEC")
            ]
        except (KeyError, TypeError, ValueError, OSError) as exc:
            raise DataError(f"{path}: damaged DESI coadd ({exc})") from None
    for a, w, f, iv in zip(ARMS, waves, fluxes, ivars, strict=True):
        if f.shape != iv.shape or f.shape[1] != len(w) or f.shape[0] != len(targetid):
            raise DataError(
                f"{path}: arm {a}: flux {f.shape}, ivar {iv.shape}, {len(w)} wavelengths, {len(targetid)} targets"
            )
    ivars = [np.where(m != 0, 0.0, iv) if m is not None else iv for iv, m in zip(ivars, masks, strict=True)]
    return waves, fluxes, ivars, targetid, radec


def read_desi_block(path: str | Path) -> SpectraBlock:
    """Every target of a DESI coadd as one :class:`SpectraBlock` (arms merged, air wavelengths).

    Redshifts and spectral types come from the Redrock (or zbest) file beside the coadd,
    matched by ``TARGETID``; targets it lacks (or every target, without one) get ``z = NaN``.
    ``columns`` holds ``TARGETID``, ``RA`` and ``DEC`` (``TARGET_RA`` / ``TARGET_DEC``, deg).
    """
    path = Path(path)
    waves, fluxes, ivars, targetid, (ra, dec) = _read_arms(path)
    wave, flux, ivar = merge_arms(waves, fluxes, ivars)
    rr = redshift_file(path)
    zt = read_redrock(rr) if rr is not None else {}
    z = np.array([zt.get(int(t), (np.nan, ""))[0] for t in targetid], dtype=float)
    spectype = np.array([zt.get(int(t), (np.nan, ""))[1] for t in targetid], dtype="U16")
    z_source = np.where(np.isfinite(z), "redrock", "none").astype("U8")
    meta = {"source": str(path), "survey": "desi", "format": "desi-coadd", "wave_medium": "vacuum"}
    return SpectraBlock(
        vac_to_air(wave),
        flux,
        ivar,
        z,
        [f"desi-{int(t)}" for t in targetid],
        spectype,
        z_source,
        {"TARGETID": targetid, "RA": ra, "DEC": dec},
        meta,
    )


def read_desi_coadd(path: str | Path, z: float | None = None) -> list[Spectrum]:
    """Read every target of a DESI coadd, arms merged, wavelengths converted to air.

    Parameters
    ----------
    path : str or Path
        ``coadd-*.fits`` file.
    z : float, optional
        Redshift for every target (overrides the Redrock file).

    Returns
    -------
    list of Spectrum
        One per FIBERMAP row; ``id`` is ``desi-<TARGETID>``; ``meta`` keeps ``targetid``,
        ``sigma_arm_median`` (median per-pixel sigma of each arm, 1e-17 erg/s/cm^2/A) and the
        pixel width ``dwave`` (A).
    """
    path = Path(path)
    waves, fluxes, ivars, targetid, _ = _read_arms(path)
    wave, flux, ivar = merge_arms(waves, fluxes, ivars)
    zs = _redshifts(path) if z is None else {}
    dwave = float(np.median(np.diff(waves[0])))
    wave_air = vac_to_air(wave)
    out = []
    for i, tid in enumerate(targetid):
        sig = {
            a: float(np.median(iv[i][iv[i] > 0] ** -0.5)) if np.any(iv[i] > 0) else float("nan")
            for a, iv in zip(ARMS, ivars, strict=True)
        }
        meta: dict[str, Any] = {
            "source": str(path),
            "survey": "desi",
            "format": "desi-coadd",
            "wave_medium": "vacuum",
            "targetid": int(tid),
            "sigma_arm_median": sig,
            "dwave": dwave,
        }
        zi = z if z is not None else zs.get(int(tid), float("nan"))
        out.append(Spectrum(wave_air, flux[i], ivar[i], zi, f"desi-{int(tid)}", meta))
    return out
