"""MPA-JHU SDSS DR7 catalogues -> one pandas DataFrame in the universe's column names.

The MPA-JHU release (Kauffmann et al. 2003, Brinchmann et al. 2004, Tremonti et al. 2004;
https://wwwmpa.mpa-garching.mpg.de/SDSS/DR7/) is a set of FITS tables with one row per DR7
spectrum, all in the same row order, so they join row-wise:

* ``gal_info_dr7_v5_2.fit(.gz)``: ``PLATEID``, ``MJD``, ``FIBERID``, ``RA``, ``DEC``, ``Z``,
  ``Z_ERR``, ``Z_WARNING``, ``SPECTROTYPE``, ``SUBCLASS``, ``TARGETTYPE``, ``PRIMTARGET``,
  ``V_DISP``, ``SN_MEDIAN``, ``E_BV_SFD``, ...
* ``gal_line_dr7_v5_2.fit(.gz)``: for each line (``H_ALPHA``, ``H_BETA``, ``OIII_5007``,
  ``NII_6584``, ...) ``<LINE>_FLUX``, ``<LINE>_FLUX_ERR`` (1e-17 erg/s/cm^2, fibre),
  ``<LINE>_EQW``, ``<LINE>_REQW`` (A; emission negative), ...; ``SIGMA_BALMER``,
  ``SIGMA_FORBIDDEN`` (km/s).
* ``totlgm_dr7_v5_2b.fit(.gz)``: total stellar mass PDF, ``MEDIAN``, ``P16``, ``P84``, ...
  (log Msun).
* ``gal_totsfr_dr7_v5_2.fits(.gz)``: total SFR PDF, same columns (log Msun/yr).
* optional ``gal_indx_dr7_v5_2.fit(.gz)``: spectral indices, ``LICK_HD_A_SUB``,
  ``LICK_HB_SUB`` and their ``_ERR`` (A, emission lines subtracted).

Output columns (those the universe also has, so select / observe / lines run unchanged):
``id`` (``sdss-PPPP-MMMMM-FFFF``), ``plate``, ``mjd``, ``fiber``, ``ra``, ``dec``, ``z``,
``log_mass`` (+ ``_p16``/``_p84``), ``log_sfr`` (+ ``_p16``/``_p84``), ``log_ssfr``,
``<line>_flux_meas`` and ``<line>_flux_err`` for the universe's line names (``Halpha``,
``Hbeta``, ``OIII_5007``, ``NII_6583``, ...), ``<line>_flux`` (= the measurement: real data
have no truth, the MPA-JHU value is the reference), ``lick_hdelta_a(_meas/_err)``,
``lick_hbeta(_meas/_err)``, ``sigma_gas`` and ``class`` by the paper's rules exactly as in
:mod:`specdenoise.sources.universe` (broad-line AGN from the pipeline's ``SUBCLASS``; else H-alpha and
H-beta S/N > 3 with the Kewley 2001 split; else Balmer absorption S/N > 3; else quiescent).

Bad values become NaN: the -9999 / -99 placeholders anywhere, non-positive flux errors and
Lick errors (-1 and 0 flag failed fits), log masses <= 0 (-1 flags no estimate), and
redshifts or SFR percentiles below -90.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from specdenoise.errors import DataError
from specdenoise.physics.relations import CLASSES, kewley01
from specdenoise.survey.readers.fits import open_fits

log = logging.getLogger(__name__)

#: Catalogue files: key -> candidate names (the first that exists in the folder is read).
CATALOGUE_FILES: dict[str, tuple[str, ...]] = {
    "gal_info": (
        "gal_info_dr7_v5_2.fit.gz",
        "gal_info_dr7_v5_2.fit",
        "gal_info_dr7_v5_2.fits.gz",
        "gal_info_dr7_v5_2.fits",
    ),
    "gal_line": (
        "gal_line_dr7_v5_2.fit.gz",
        "gal_line_dr7_v5_2.fit",
        "gal_line_dr7_v5_2.fits.gz",
        "gal_line_dr7_v5_2.fits",
    ),
    "totlgm": (
        "totlgm_dr7_v5_2b.fit.gz",
        "totlgm_dr7_v5_2b.fit",
        "totlgm_dr7_v5_2.fit.gz",
        "totlgm_dr7_v5_2.fit",
        "totlgm_dr7_v5_2.fits",
    ),
    "gal_totsfr": (
        "gal_totsfr_dr7_v5_2.fits.gz",
        "gal_totsfr_dr7_v5_2.fits",
        "gal_totsfr_dr7_v5_2.fit.gz",
        "gal_totsfr_dr7_v5_2.fit",
    ),
    "gal_indx": (
        "gal_indx_dr7_v5_2.fit.gz",
        "gal_indx_dr7_v5_2.fit",
        "gal_indx_dr7_v5_2.fits.gz",
        "gal_indx_dr7_v5_2.fits",
    ),
}
REQUIRED = ("gal_info", "gal_line", "totlgm", "gal_totsfr")

#: gal_line line prefix -> universe line name.
LINE_MAP: dict[str, str] = {
    "OII_3726": "OII_3726",
    "OII_3729": "OII_3729",
    "NEIII_3869": "NeIII_3869",
    "H_DELTA": "Hdelta",
    "H_GAMMA": "Hgamma",
    "OIII_4363": "OIII_4363",
    "H_BETA": "Hbeta",
    "OIII_4959": "OIII_4959",
    "OIII_5007": "OIII_5007",
    "HEI_5876": "HeI_5876",
    "OI_6300": "OI_6300",
    "NII_6548": "NII_6548",
    "H_ALPHA": "Halpha",
    "NII_6584": "NII_6583",
    "SII_6717": "SII_6716",
    "SII_6731": "SII_6731",
}
#: Lines whose flux and error gal_line must have (the classification needs them).
REQUIRED_LINES = ("H_ALPHA", "H_BETA", "OIII_5007", "NII_6584")
#: gal_indx index -> universe Lick column.
LICK_MAP = {"LICK_HD_A_SUB": "lick_hdelta_a", "LICK_HB_SUB": "lick_hbeta"}
#: gal_line Balmer lines whose stellar absorption EW (REQW - EQW) stands in for the Lick index
#: when gal_indx is absent.
LICK_FALLBACK = {"H_DELTA": "lick_hdelta_a", "H_BETA": "lick_hbeta"}
MAIN_GALAXY = 64  # PRIMTARGET bit of the SDSS main galaxy sample


def find_catalogues(folder: str | Path) -> dict[str, Path]:
    """Locate the catalogue files in ``folder``; raise :class:`DataError` if a required one is missing."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(f"{folder}: MPA-JHU folder not found (run `specdenoise data download-mpajhu --out {folder}`)")
    found: dict[str, Path] = {}
    for key, names in CATALOGUE_FILES.items():
        for name in names:
            if (folder / name).exists():
                found[key] = folder / name
                break
    missing = [k for k in REQUIRED if k not in found]
    if missing:
        want = ", ".join(CATALOGUE_FILES[k][0] for k in missing)
        raise DataError(f"{folder}: missing MPA-JHU catalogue(s) {want}")
    return found


def _read_table(
    path: Path, columns: tuple[str, ...] | None = None, optional: tuple[str, ...] = ()
) -> dict[str, np.ndarray]:
    """Read HDU 1 of a FITS table: the requested columns (all if None) as native-endian arrays."""
    with open_fits(path) as hdul:
        if len(hdul) < 2 or not hasattr(hdul[1], "columns"):
            raise DataError(f"{path}: HDU 1 is not a binary table")
        hdu = hdul[1]
        names = {c.upper(): c for c in hdu.columns.names}
        want = list(names) if columns is None else list(columns)
        missing = [c for c in want if c.upper() not in names]
        if missing:
            raise DataError(f"{path}: missing column(s) {', '.join(missing)}")
        out = {}
        for c in want + [o for o in optional if o.upper() in names]:
            a = np.asarray(hdu.data[names[c.upper()]])
            if a.dtype.kind in "SU":
                a = np.char.strip(a.astype(str))
            elif a.dtype.byteorder not in ("=", "|"):
                a = a.astype(a.dtype.newbyteorder("="))
            out[c.upper()] = a
    return out


def _bad_to_nan(a: np.ndarray) -> np.ndarray:
    a = np.asarray(a, dtype=float).copy()
    a[~np.isfinite(a) | (a <= -99.0)] = np.nan
    return a


def _positive(a: np.ndarray) -> np.ndarray:
    a = _bad_to_nan(a)
    a[~(a > 0)] = np.nan
    return a


def read_mpajhu(folder: str | Path, files: dict[str, Path] | None = None) -> Any:
    """Read and join the MPA-JHU DR7 catalogues into one DataFrame (universe column names).

    Parameters
    ----------
    folder : str or Path
        Folder with the catalogue files (see :data:`CATALOGUE_FILES`).
    files : dict, optional
        Explicit paths by key (``gal_info``, ``gal_line``, ``totlgm``, ``gal_totsfr``,
        ``gal_indx``); default: found in ``folder``.

    Returns
    -------
    pandas.DataFrame
        One row per DR7 spectrum (n rows, the length of gal_info); see the module docstring
        for the columns and units.
    """
    files = files or find_catalogues(folder)
    info, line, mass, sfr, indx = _read_tables(files)
    df = _info_columns(info)
    _mass_sfr_columns(df, mass, sfr)
    _line_columns(df, line)
    lick_source = _lick_columns(df, line, indx)
    df["class"] = pd.Categorical.from_codes(_classes(df), CLASSES)
    df.attrs["lick_source"] = lick_source
    return df


def _read_tables(files: dict[str, Path]) -> tuple[dict, dict, dict, dict, dict | None]:
    """gal_info, gal_line, totlgm, gal_totsfr and (optional) gal_indx, checked to have as many rows."""
    info = _read_table(
        files["gal_info"],
        ("PLATEID", "MJD", "FIBERID", "Z"),
        optional=(
            "RA",
            "DEC",
            "Z_ERR",
            "Z_WARNING",
            "SPECTROTYPE",
            "SUBCLASS",
            "TARGETTYPE",
            "PRIMTARGET",
            "V_DISP",
            "SN_MEDIAN",
            "E_BV_SFD",
            "RELIABLE",
        ),
    )
    n = len(info["PLATEID"])
    line_cols = tuple(f"{p}_{s}" for p in REQUIRED_LINES for s in ("FLUX", "FLUX_ERR"))
    opt_line = tuple(f"{p}_{s}" for p in LINE_MAP for s in ("FLUX", "FLUX_ERR", "EQW", "EQW_ERR", "REQW", "REQW_ERR"))
    line = _read_table(files["gal_line"], line_cols, optional=opt_line + ("SIGMA_BALMER", "SIGMA_FORBIDDEN"))
    mass = _read_table(files["totlgm"], ("MEDIAN", "P16", "P84"))
    sfr = _read_table(files["gal_totsfr"], ("MEDIAN", "P16", "P84"))
    indx = None
    if "gal_indx" in files:
        indx = _read_table(files["gal_indx"], tuple(k for c in LICK_MAP for k in (c, f"{c}_ERR")))
    for key, tab in (("gal_line", line), ("totlgm", mass), ("gal_totsfr", sfr), ("gal_indx", indx)):
        if tab is not None:
            m = len(next(iter(tab.values())))
            if m != n:
                raise DataError(f"{files[key]}: {m} rows but gal_info has {n}; the MPA-JHU tables join row by row")
    return info, line, mass, sfr, indx


def _info_columns(info: dict[str, np.ndarray]) -> Any:
    """Ids, plate-mjd-fiber, redshift and the other gal_info columns."""
    plate, mjd, fiber = (info[k].astype(np.int64) for k in ("PLATEID", "MJD", "FIBERID"))
    df = pd.DataFrame(
        {
            "id": [f"sdss-{p:04d}-{m:05d}-{f:04d}" for p, m, f in zip(plate, mjd, fiber, strict=True)],
            "plate": plate,
            "mjd": mjd,
            "fiber": fiber,
        }
    )
    z = _bad_to_nan(info["Z"])
    z[z < 0] = np.nan
    df["z"] = z
    for src, dst in (
        ("RA", "ra"),
        ("DEC", "dec"),
        ("Z_ERR", "z_err"),
        ("V_DISP", "v_disp"),
        ("SN_MEDIAN", "sn_median"),
        ("E_BV_SFD", "e_bv_sfd"),
    ):
        if src in info:
            df[dst] = _bad_to_nan(info[src])
    for src, dst in (("Z_WARNING", "z_warning"), ("PRIMTARGET", "primtarget"), ("RELIABLE", "reliable")):
        if src in info:
            df[dst] = info[src].astype(np.int64)
    for src, dst in (("SPECTROTYPE", "spectrotype"), ("SUBCLASS", "subclass"), ("TARGETTYPE", "targettype")):
        if src in info:
            df[dst] = info[src].astype(str)

    return df


def _mass_sfr_columns(df: Any, mass: dict[str, np.ndarray], sfr: dict[str, np.ndarray]) -> None:
    """Stellar mass (totlgm) and SFR (gal_totsfr) medians and 16/84 percentiles."""
    lm = _bad_to_nan(mass["MEDIAN"])
    lm[~(lm > 0)] = np.nan
    df["log_mass"] = lm
    for p in ("P16", "P84"):
        v = _bad_to_nan(mass[p])
        v[~(v > 0)] = np.nan
        df[f"log_mass_{p.lower()}"] = v
    df["log_sfr"] = _bad_to_nan(sfr["MEDIAN"])
    df["log_sfr_p16"] = _bad_to_nan(sfr["P16"])
    df["log_sfr_p84"] = _bad_to_nan(sfr["P84"])
    df["log_ssfr"] = df["log_sfr"] - df["log_mass"]


def _line_columns(df: Any, line: dict[str, np.ndarray]) -> None:
    """Line fluxes and errors (a flux without a valid error is a failed fit) and the gas dispersion."""
    for prefix, name in LINE_MAP.items():
        if f"{prefix}_FLUX" not in line:
            continue
        flux = _bad_to_nan(line[f"{prefix}_FLUX"])
        err = _positive(line[f"{prefix}_FLUX_ERR"])
        flux[np.isnan(err)] = np.nan  # a flux without a valid error is a failed fit
        df[f"{name}_flux_meas"] = flux
        df[f"{name}_flux_err"] = err
        df[f"{name}_flux"] = flux
    if "SIGMA_BALMER" in line:
        df["sigma_gas"] = _positive(line["SIGMA_BALMER"])


def _lick_columns(df: Any, line: dict[str, np.ndarray], indx: dict[str, np.ndarray] | None) -> str:
    """Balmer absorption (Lick indices from gal_indx, else REQW - EQW of gal_line); returns its source."""
    for key in ("lick_hdelta_a", "lick_hbeta"):
        df[f"{key}_meas"] = np.nan
        df[f"{key}_err"] = np.nan
    if indx is not None:
        for col, key in LICK_MAP.items():
            df[f"{key}_meas"] = _bad_to_nan(indx[col])
            df[f"{key}_err"] = _positive(indx[f"{col}_ERR"])
        lick_source = "gal_indx"
    else:
        for prefix, key in LICK_FALLBACK.items():
            cols = [f"{prefix}_{c}" for c in ("REQW", "EQW", "REQW_ERR", "EQW_ERR")]
            if all(c in line for c in cols):
                reqw, eqw = _bad_to_nan(line[cols[0]]), _bad_to_nan(line[cols[1]])
                e1, e2 = _positive(line[cols[2]]), _positive(line[cols[3]])
                df[f"{key}_meas"] = reqw - eqw  # stellar absorption EW (MPA-JHU: EW_stellar = REQW - EQW)
                df[f"{key}_err"] = np.hypot(e1, e2)
        lick_source = "gal_line REQW-EQW"
        log.info("MPA-JHU: no gal_indx file; Balmer absorption from gal_line REQW - EQW")
    for key in ("lick_hdelta_a", "lick_hbeta"):
        df[key] = df[f"{key}_meas"]
    return lick_source


def _classes(df: Any) -> np.ndarray:
    """Class codes by the paper's rules (section 2), those of the universe."""
    n = len(df)
    # ---- classification (paper section 2), the rules of specdenoise.sources.universe
    ha, hb = df["Halpha_flux_meas"].to_numpy(), df["Hbeta_flux_meas"].to_numpy()
    with np.errstate(divide="ignore", invalid="ignore"):
        s_ha = ha / df["Halpha_flux_err"].to_numpy()
        s_hb = hb / df["Hbeta_flux_err"].to_numpy()
        em = (s_ha > 3) & (s_hb > 3)
        x = np.log10(np.clip(df["NII_6583_flux_meas"].to_numpy(), 1e-3, None) / ha)
        y = np.log10(np.clip(df["OIII_5007_flux_meas"].to_numpy(), 1e-3, None) / hb)
        agn = y > kewley01(x)
        absorption = np.zeros(n, dtype=bool)
        for key in ("lick_hdelta_a", "lick_hbeta"):
            absorption |= (df[f"{key}_meas"].to_numpy() / df[f"{key}_err"].to_numpy()) > 3
    cls = np.where(em & agn, 3, np.where(em, 0, np.where(absorption, 1, 2)))
    if "subclass" in df:
        broad = df["subclass"].str.upper().str.contains("BROADLINE").to_numpy()
        cls = np.where(broad, 4, cls)
    return cls


def parent_sample(cat: Any, z_min: float, z_max: float, main_only: bool = True) -> Any:
    """The paper's parent pool: galaxies with a good redshift in [z_min, z_max].

    Parameters
    ----------
    cat : pandas.DataFrame
        From :func:`read_mpajhu`.
    z_min, z_max : float
        Redshift range.
    main_only : bool
        Keep only SDSS main-sample targets (``PRIMTARGET`` bit 64) when the column exists.

    Returns
    -------
    pandas.DataFrame
        The kept rows, duplicates (repeat observations of one plate-mjd-fiber) dropped,
        index reset.
    """
    keep = cat["z"].between(z_min, z_max).to_numpy().copy()
    if "z_warning" in cat:
        keep &= cat["z_warning"].to_numpy() == 0
    if "spectrotype" in cat:
        keep &= cat["spectrotype"].str.upper().str.startswith("GALAXY").to_numpy()
    if main_only and "primtarget" in cat:
        keep &= (cat["primtarget"].to_numpy() & MAIN_GALAXY) != 0
    out = cat[keep].drop_duplicates("id").reset_index(drop=True)
    return out
