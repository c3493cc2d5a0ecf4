"""The in-memory form every survey reader returns.

A :class:`Spectrum` is one observed-frame spectrum on its own wavelength grid, in the units the
universe uses (1e-17 erg/s/cm^2/A, air wavelengths in A), so that survey spectra and the
embedded synthetic population go through the same preprocessing
(:func:`specdenoise.data.preprocess.preprocess`). Readers convert vacuum wavelengths to air and
record the original medium in ``meta["wave_medium"]``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np


def vac_to_air(wave_vac: np.ndarray) -> np.ndarray:
    """Vacuum to air wavelengths (A), the IAU standard of Morton (2000), as in ppxf and SDSS.

    Parameters
    ----------
    wave_vac : ndarray, shape (n,)
        Vacuum wavelengths in A.

    Returns
    -------
    ndarray, shape (n,)
        Air wavelengths in A.
    """
    w = np.asarray(wave_vac, dtype=float)
    s2 = (1e4 / w) ** 2
    n = 1 + 0.0000834254 + 0.02406147 / (130 - s2) + 0.00015998 / (38.9 - s2)
    return w / n


def sigma_from_ivar(ivar: np.ndarray, fill: float = np.nan) -> np.ndarray:
    """Per-pixel sigma = ivar^-1/2 (any shape, in the input's float precision); ``fill`` where
    ``ivar <= 0`` (masked)."""
    ivar = np.asarray(ivar)
    if ivar.dtype.kind != "f":
        ivar = ivar.astype(float)
    good = ivar > 0
    return np.where(good, 1.0 / np.sqrt(np.where(good, ivar, 1.0)), fill)


@dataclass
class Spectrum:
    """One observed-frame spectrum.

    Attributes
    ----------
    wave : ndarray, shape (n_pix,)
        Observed-frame air wavelengths in A, strictly increasing.
    flux : ndarray, shape (n_pix,)
        Flux density in 1e-17 erg/s/cm^2/A.
    ivar : ndarray, shape (n_pix,)
        Inverse variance of ``flux`` (0 marks a masked pixel).
    z : float
        Redshift (NaN when the file carries none).
    id : str
        Identifier unique within a batch (e.g. ``"sdss-0266-51602-0001"``).
    meta : dict
        Provenance: ``source`` (file path), ``survey``, ``format``, ``wave_medium`` of the file,
        survey identifiers, and anything else the reader keeps.
    """

    wave: np.ndarray
    flux: np.ndarray
    ivar: np.ndarray
    z: float
    id: str
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.wave = np.asarray(self.wave, dtype=float)
        self.flux = np.asarray(self.flux, dtype=float)
        self.ivar = np.asarray(self.ivar, dtype=float)
        self.z = float(self.z)


@dataclass
class SpectraBlock:
    """Every spectrum of one survey file on one shared observed-frame grid (the batch form).

    Attributes
    ----------
    wave : ndarray, shape (k,)
        Observed-frame air wavelengths in A, strictly increasing, shared by all rows.
    flux, ivar : ndarray, shape (n, k)
        Flux density (1e-17 erg/s/cm^2/A) and inverse variance (0 = masked pixel).
    z : ndarray, shape (n,)
        Redshifts (NaN where unknown).
    ids : list of str
        Identifiers (``desi-<TARGETID>``, ``sdss-PPPP-MMMMM-FFFF``).
    spectype : ndarray of str, shape (n,)
        Spectral type (``GALAXY``, ``STAR``, ``QSO``; empty when unknown).
    z_source : ndarray of str, shape (n,)
        Where each redshift came from: ``file``, ``redrock``, ``catalog`` or ``none``.
    columns : dict
        Survey identifiers and positions for the output table, each an array (n,):
        ``TARGETID``, ``RA``, ``DEC`` (DESI) or ``PLATE``, ``MJD``, ``FIBERID``, ``RA``, ``DEC`` (SDSS).
    meta : dict
        ``source``, ``survey``, ``format``, ``wave_medium`` of the file.
    """

    wave: np.ndarray
    flux: np.ndarray
    ivar: np.ndarray
    z: np.ndarray
    ids: list[str]
    spectype: np.ndarray
    z_source: np.ndarray
    columns: dict[str, np.ndarray] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.ids)
