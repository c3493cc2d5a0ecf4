"""Format fixtures for the survey readers, built with astropy in the real files' layouts.

* :func:`write_mpajhu`: gal_info / gal_line / totlgm / gal_totsfr (/ gal_indx) with the real
  MPA-JHU DR7 column names, one row per galaxy in the same order.
* :func:`write_spec_lite`: an SDSS spec-lite file (COADD, SPECOBJ, SPZLINE) with a given
  plate-mjd-fiber and redshift, the flux of a real SDSS spectrum shipped with ppxf.
* :func:`write_spspec`: a DR7 spSpec file (primary image: flux, continuum-subtracted, error,
  mask; COEFF0/COEFF1 and Z/PLATEID/MJD/FIBERID in the header).
"""

from __future__ import annotations

import importlib.resources
from pathlib import Path

import numpy as np

from specdenoise.survey.synthetic import write_desi_coadd  # noqa: F401 - a fixture builder of its own

LINES = (
    "OII_3726",
    "OII_3729",
    "NEIII_3869",
    "H_DELTA",
    "H_GAMMA",
    "OIII_4363",
    "H_BETA",
    "OIII_4959",
    "OIII_5007",
    "HEI_5876",
    "OI_6300",
    "NII_6548",
    "H_ALPHA",
    "NII_6584",
    "SII_6717",
    "SII_6731",
)


def ppxf_sdss_file(name: str = "NGC3522_SDSS_DR18.fits") -> Path:
    return Path(str(importlib.resources.files("ppxf") / "spectra" / name))


def mpajhu_rows() -> list[dict]:
    """Galaxies with known answers.

    Each row: plate, mjd, fiber, z, Ha, Hb, OIII, NII, errors, mass, sfr, lick, subclass, expected class.
    """
    return [
        # star-forming: strong Balmer lines, low [NII]/Ha and [OIII]/Hb
        dict(
            p=266,
            m=51602,
            f=1,
            z=0.030,
            ha=300.0,
            hb=80.0,
            oiii=40.0,
            nii=60.0,
            err=5.0,
            mass=10.1,
            sfr=0.3,
            hda=2.0,
            hda_err=1.0,
            sub="STARFORMING",
            cls="emission_line",
        ),
        # narrow-line AGN: above Kewley 2001
        dict(
            p=266,
            m=51602,
            f=2,
            z=0.040,
            ha=100.0,
            hb=30.0,
            oiii=300.0,
            nii=120.0,
            err=3.0,
            mass=10.9,
            sfr=0.0,
            hda=1.0,
            hda_err=1.0,
            sub="AGN",
            cls="narrow_line_agn",
        ),
        # weak lines, strong H-delta absorption -> absorption
        dict(
            p=267,
            m=51608,
            f=10,
            z=0.035,
            ha=5.0,
            hb=1.0,
            oiii=1.0,
            nii=3.0,
            err=4.0,
            mass=10.5,
            sfr=-0.8,
            hda=6.0,
            hda_err=0.8,
            sub="",
            cls="absorption",
        ),
        # weak lines, no Balmer absorption -> quiescent; SFR flagged -9999, mass -1
        dict(
            p=267,
            m=51608,
            f=11,
            z=0.045,
            ha=2.0,
            hb=0.5,
            oiii=0.5,
            nii=1.0,
            err=4.0,
            mass=-1.0,
            sfr=-9999.0,
            hda=-1.0,
            hda_err=1.0,
            sub="",
            cls="quiescent",
        ),
        # broad-line AGN from the pipeline's subclass
        dict(
            p=268,
            m=51633,
            f=100,
            z=0.028,
            ha=900.0,
            hb=250.0,
            oiii=200.0,
            nii=100.0,
            err=10.0,
            mass=10.7,
            sfr=0.5,
            hda=0.0,
            hda_err=1.0,
            sub="AGN BROADLINE",
            cls="broad_line_agn",
        ),
        # bad redshift (z_warning) and outside the z range: cut from the parent pool
        dict(
            p=268,
            m=51633,
            f=101,
            z=0.150,
            ha=50.0,
            hb=15.0,
            oiii=10.0,
            nii=15.0,
            err=2.0,
            mass=10.0,
            sfr=0.1,
            hda=1.0,
            hda_err=1.0,
            sub="",
            cls="emission_line",
        ),
    ]


def write_mpajhu(
    folder: Path, rows: list[dict] | None = None, with_indx: bool = True, drop: tuple[str, ...] = ()
) -> dict[str, Path]:
    """Write the MPA-JHU catalogue files for ``rows`` into ``folder``; return their paths."""
    from astropy.table import Table

    rows = rows or mpajhu_rows()
    folder.mkdir(parents=True, exist_ok=True)
    n = len(rows)
    col = lambda k: np.array([r[k] for r in rows])  # noqa: E731
    info = Table()
    info["PLATEID"] = col("p").astype(np.int16)
    info["MJD"] = col("m").astype(np.int32)
    info["FIBERID"] = col("f").astype(np.int16)
    info["RA"] = np.linspace(150, 151, n).astype(np.float32)
    info["DEC"] = np.linspace(1, 2, n).astype(np.float32)
    info["PRIMTARGET"] = np.full(n, 64, dtype=np.int32)
    info["TARGETTYPE"] = np.array(["GALAXY"] * n)
    info["SPECTROTYPE"] = np.array(["GALAXY"] * n)
    info["SUBCLASS"] = np.array([r["sub"] or " " for r in rows])
    info["Z"] = col("z").astype(np.float32)
    info["Z_ERR"] = np.full(n, 1e-5, dtype=np.float32)
    info["Z_WARNING"] = np.array([0] * (n - 1) + [4], dtype=np.int16)
    info["V_DISP"] = np.full(n, 120.0, dtype=np.float32)
    info["SN_MEDIAN"] = np.full(n, 15.0, dtype=np.float32)
    info["E_BV_SFD"] = np.full(n, 0.03, dtype=np.float32)
    line = Table()
    line["PLATEID"], line["MJD"], line["FIBERID"] = info["PLATEID"], info["MJD"], info["FIBERID"]
    line["SIGMA_BALMER"] = np.full(n, 80.0, dtype=np.float32)
    line["SIGMA_FORBIDDEN"] = np.full(n, 80.0, dtype=np.float32)
    vals = {"H_ALPHA": col("ha"), "H_BETA": col("hb"), "OIII_5007": col("oiii"), "NII_6584": col("nii")}
    for name in LINES:
        flux = vals.get(name, np.full(n, 10.0))
        for suffix, v in (
            ("CONT", 50.0),
            ("CONT_ERR", 1.0),
            ("REQW", -1.0),
            ("REQW_ERR", 0.5),
            ("EQW", -2.0),
            ("EQW_ERR", 0.5),
        ):
            line[f"{name}_{suffix}"] = np.full(n, v, dtype=np.float32)
        line[f"{name}_FLUX"] = np.asarray(flux, dtype=np.float32)
        err = col("err").astype(np.float32)
        if name == "OIII_4363":
            err = np.full(n, -1.0, dtype=np.float32)  # failed fit flag
        line[f"{name}_FLUX_ERR"] = err
        line[f"{name}_INST_RES"] = np.full(n, 60.0, dtype=np.float32)
        line[f"{name}_CHISQ"] = np.full(n, 1.0, dtype=np.float32)
    mass, sfr = Table(), Table()
    for t, key in ((mass, "mass"), (sfr, "sfr")):
        med = col(key).astype(np.float32)
        bad = med < -90
        t["AVG"] = med
        t["MEDIAN"] = med
        t["P2P5"] = np.where(bad, med, med - 0.3).astype(np.float32)
        t["P16"] = np.where(bad, med, med - 0.1).astype(np.float32)
        t["P84"] = np.where(bad, med, med + 0.1).astype(np.float32)
        t["P97P5"] = np.where(bad, med, med + 0.3).astype(np.float32)
        t["MODE"] = med
    sfr["FLAG"] = np.zeros(n, dtype=np.int16)
    for t in (line, mass, sfr):
        for c in drop:
            if c in t.colnames:
                t.remove_column(c)
    paths = {
        "gal_info": folder / "gal_info_dr7_v5_2.fit.gz",
        "gal_line": folder / "gal_line_dr7_v5_2.fit.gz",
        "totlgm": folder / "totlgm_dr7_v5_2b.fit.gz",
        "gal_totsfr": folder / "gal_totsfr_dr7_v5_2.fits.gz",
    }
    info.write(paths["gal_info"], format="fits")
    line.write(paths["gal_line"], format="fits")
    mass.write(paths["totlgm"], format="fits")
    sfr.write(paths["gal_totsfr"], format="fits")
    if with_indx:
        indx = Table()
        indx["LICK_HD_A"] = col("hda").astype(np.float32)
        indx["LICK_HD_A_ERR"] = col("hda_err").astype(np.float32)
        indx["LICK_HD_A_SUB"] = col("hda").astype(np.float32)
        indx["LICK_HD_A_SUB_ERR"] = col("hda_err").astype(np.float32)
        indx["LICK_HB_SUB"] = np.zeros(n, dtype=np.float32)
        indx["LICK_HB_SUB_ERR"] = np.ones(n, dtype=np.float32)
        paths["gal_indx"] = folder / "gal_indx_dr7_v5_2.fit.gz"
        indx.write(paths["gal_indx"], format="fits")
    return paths


def write_spec_lite(path: Path, plate: int, mjd: int, fiber: int, z: float, source: Path | None = None) -> Path:
    """A spec-lite file: the COADD of a real ppxf SDSS spectrum, SPECOBJ with the given ids and z."""
    from astropy.io import fits

    with fits.open(source or ppxf_sdss_file()) as h:
        coadd = h["COADD"].data
        cols = [
            fits.Column(name=c, format="E" if c not in ("and_mask", "or_mask") else "J", array=np.asarray(coadd[c]))
            for c in ("flux", "loglam", "ivar", "and_mask", "or_mask", "wdisp", "sky", "model")
        ]
        spzline = h["SPZLINE"].copy()
    so = fits.BinTableHDU.from_columns(
        [
            fits.Column(name="PLATE", format="J", array=[plate]),
            fits.Column(name="MJD", format="J", array=[mjd]),
            fits.Column(name="FIBERID", format="J", array=[fiber]),
            fits.Column(name="Z", format="E", array=[z]),
            fits.Column(name="Z_ERR", format="E", array=[1e-5]),
            fits.Column(name="ZWARNING", format="J", array=[0]),
            fits.Column(name="CLASS", format="6A", array=["GALAXY"]),
        ],
        name="SPECOBJ",
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    fits.HDUList([fits.PrimaryHDU(), fits.BinTableHDU.from_columns(cols, name="COADD"), so, spzline]).writeto(
        path, overwrite=True
    )
    return path


def write_spspec(
    path: Path, n_pix: int = 3000, z: float = 0.03, plate: int = 266, mjd: int = 51630, fiber: int = 145, rows: int = 4
) -> dict:
    """A DR7 spSpec file with a known spectrum; returns what a reader must recover."""
    from astropy.io import fits

    coeff0, coeff1 = 3.5797, 1e-4
    loglam = coeff0 + coeff1 * np.arange(n_pix)
    wave = 10**loglam
    flux = 20.0 + 0.001 * (wave - 5000) + 50 * np.exp(-0.5 * ((wave - 6562.8 * 1.00028 * (1 + z)) / 3.0) ** 2)
    err = np.full(n_pix, 2.0)
    err[100:110] = 0.0  # bad pixels: error 0
    mask = np.zeros(n_pix)
    mask[500:505] = 2**23  # BRIGHTSKY
    mask[600:605] = 2**30  # emission-line flag: informational, keeps the pixel
    data = np.vstack([flux, flux - 20.0, err, mask, np.zeros(n_pix)])[:rows].astype(np.float32)
    hdu = fits.PrimaryHDU(data)
    for k, v in dict(
        COEFF0=coeff0, COEFF1=coeff1, Z=z, Z_ERR=1e-5, PLATEID=plate, MJD=mjd, FIBERID=fiber, SPEC_CLN=2
    ).items():
        hdu.header[k] = v
    path.parent.mkdir(parents=True, exist_ok=True)
    hdu.writeto(path, overwrite=True)
    return {"wave_vac": wave, "flux": flux, "err": err, "z": z, "id": f"sdss-{plate:04d}-{mjd:05d}-{fiber:04d}"}
