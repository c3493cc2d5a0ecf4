"""Synthetic DESI coadds of many targets built from real ones (tests and ``specdenoise bench denoise``).

The only real DESI spectra here are the two one-target coadds in the fastspecfit wheel
(:func:`specdenoise.data.desi.fetch_coadds`); :func:`write_desi_coadd` tiles them into a coadd of
``n`` targets in the real layout (B/R/Z ``_WAVELENGTH``/``_FLUX``/``_IVAR``/``_MASK``, ``FIBERMAP``)
with a Redrock file beside it, so that a survey-size file can be read, flagged and de-noised.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from astropy.io import fits


def write_desi_coadd(
    path: Path,
    real: list[Path],
    n: int = 500,
    seed: int = 0,
    z: np.ndarray | None = None,
    spectype: list[str] | None = None,
    masked: tuple[int, ...] = (),
    redrock: bool = True,
) -> dict:
    """A DESI coadd of ``n`` targets built from the real fastspecfit coadds ``real``.

    Target ``i`` is the spectrum of ``real[i % len(real)]`` scaled by a random factor in
    [0.5, 2] with extra Gaussian noise of 0.3 of its own sigma (ivar kept), at that coadd's
    Redrock redshift plus a jitter of 0 to 0.01 (or ``z[i]``); the targets in ``masked`` have every
    pixel masked (``*_MASK`` != 0). With ``redrock`` a ``redrock-*`` file beside it holds
    ``TARGETID``, ``Z``, ``ZWARN`` and ``SPECTYPE`` (``spectype[i]``, default GALAXY).
    Returns ``targetid``, ``z``, ``spectype`` and the ``redrock`` path.
    """
    rng = np.random.default_rng(seed)
    src = [fits.open(p, memmap=False) for p in real]
    z_src = []
    for p in real:
        with fits.open(p.with_name(p.name.replace("coadd-", "redrock-", 1))) as h:
            z_src.append(float(h["REDSHIFTS"].data["Z"][0]))
    which = np.arange(n) % len(real)
    scale = rng.uniform(0.5, 2.0, n)
    zs = np.array([z_src[k] for k in which]) + rng.uniform(0.0, 0.01, n) if z is None else np.asarray(z, float)
    hdus = [fits.PrimaryHDU()]
    targetid = 39633345008000000 + np.arange(n, dtype=np.int64)
    fm = fits.BinTableHDU.from_columns(
        [
            fits.Column("TARGETID", "K", array=targetid),
            fits.Column("TARGET_RA", "D", array=rng.uniform(150, 151, n)),
            fits.Column("TARGET_DEC", "D", array=rng.uniform(1, 2, n)),
        ],
        name="FIBERMAP",
    )
    hdus.append(fm)
    for arm in ("B", "R", "Z"):
        wave = np.asarray(src[0][f"{arm}_WAVELENGTH"].data, float)
        f0 = np.vstack([np.asarray(s[f"{arm}_FLUX"].data, float)[0] for s in src])[which]
        iv = np.vstack([np.asarray(s[f"{arm}_IVAR"].data, float)[0] for s in src])[which]
        mk = np.vstack([np.asarray(s[f"{arm}_MASK"].data)[0] for s in src])[which].astype(np.int32)
        sig = np.where(iv > 0, 1 / np.sqrt(np.where(iv > 0, iv, 1)), 0.0)
        flux = f0 * scale[:, None] + 0.3 * sig * rng.standard_normal(f0.shape)
        mk[list(masked)] = 1
        hdus += [
            fits.ImageHDU(wave, name=f"{arm}_WAVELENGTH"),
            fits.ImageHDU(flux.astype(np.float32), name=f"{arm}_FLUX"),
            fits.ImageHDU(iv.astype(np.float32), name=f"{arm}_IVAR"),
            fits.ImageHDU(mk, name=f"{arm}_MASK"),
        ]
    for s in src:
        s.close()
    path.parent.mkdir(parents=True, exist_ok=True)
    fits.HDUList(hdus).writeto(path, overwrite=True)
    types = list(spectype) if spectype is not None else ["GALAXY"] * n
    rr = path.with_name(path.name.replace("coadd-", "redrock-", 1))
    if redrock:
        fits.HDUList(
            [
                fits.PrimaryHDU(),
                fits.BinTableHDU.from_columns(
                    [
                        fits.Column("TARGETID", "K", array=targetid),
                        fits.Column("Z", "D", array=zs),
                        fits.Column("ZWARN", "K", array=np.zeros(n, np.int64)),
                        fits.Column("SPECTYPE", "6A", array=np.array(types)),
                    ],
                    name="REDSHIFTS",
                ),
            ]
        ).writeto(rr, overwrite=True)
    return {"targetid": targetid, "z": zs, "spectype": types, "redrock": rr}
