"""Population relations and dust laws of the embedded universe (and the class names of the paper's rules)."""

from __future__ import annotations

import functools

import numpy as np

#: Spectral classes by the paper's rules (section 2).
CLASSES = ("emission_line", "absorption", "quiescent", "narrow_line_agn", "broad_line_agn")
#: Physical types the universe draws before the classes are measured.
PTYPES = ("star_forming", "quenched", "agn", "blagn")


# --------------------------------------------------------------------------- cosmology
@functools.lru_cache(maxsize=4)
def distance_table(z_max: float) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Planck18 redshift grid, luminosity distance (cm), dV/dz and age (yr) up to 1.2 ``z_max`` (cached)."""
    from astropy.cosmology import Planck18  # ~0.6 s to import: only when a distance is needed

    z = np.linspace(0.0, max(z_max * 1.2, 0.01), 2001)
    dl_cm = Planck18.luminosity_distance(z).to("cm").value
    dvdz = Planck18.differential_comoving_volume(z).value
    age_yr = Planck18.age(z).to("yr").value
    return z, dl_cm, dvdz, age_yr


#: the redshift tops of the tables :func:`luminosity_distance_cm` and :func:`age_of_universe_yr`
#: interpolate in: the smallest that covers the input, so that every chunk of a universe draw reuses
#: one table (a table per chunk's own largest redshift cost ~1 s each and missed the cache)
TABLE_TOPS = (0.1, 0.3, 1.0, 3.0, 10.0, 30.0)


def _table_for(z: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The :func:`distance_table` of the smallest :data:`TABLE_TOPS` entry covering ``max(z)``."""
    z_max = float(np.max(z))
    return distance_table(next((t for t in TABLE_TOPS if t >= z_max), z_max))


def luminosity_distance_cm(z: np.ndarray) -> np.ndarray:
    """Planck18 luminosity distance in cm at redshifts ``z`` (interpolated table)."""
    zt, dl, _, _ = _table_for(z)
    return np.interp(z, zt, dl)


def age_of_universe_yr(z: np.ndarray) -> np.ndarray:
    """Planck18 age of the universe in yr at redshifts ``z`` (interpolated table)."""
    zt, _, _, age = _table_for(z)
    return np.interp(z, zt, age)


# --------------------------------------------------------------------------- relations
def sfms(log_mass: np.ndarray) -> np.ndarray:
    """Star-forming main sequence at z~0, log10 SFR [M_sun/yr] (Renzini & Peng 2015)."""
    return 0.76 * log_mass - 7.64


def mzr(log_mass: np.ndarray) -> np.ndarray:
    """Mass-metallicity relation, 12+log(O/H) (Curti et al. 2020 functional form)."""
    return 8.793 - 0.28 / 1.2 * np.log10(1.0 + (10.0**log_mass / 10.0**10.02) ** -1.2)


def quenched_fraction(log_mass: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-(log_mass - 10.55) / 0.28))


def kewley01(log_nii_ha: np.ndarray) -> np.ndarray:
    """Kewley et al. (2001) maximum-starburst line, log([OIII]/Hb) vs log([NII]/Ha)."""
    x = np.asarray(log_nii_ha, dtype=float)
    with np.errstate(divide="ignore"):
        y = 0.61 / (x - 0.47) + 1.19
    return np.where(x < 0.47, y, -np.inf)


def cardelli(wave: np.ndarray, r_v: float = 3.1) -> np.ndarray:
    """Cardelli, Clayton & Mathis (1989) k(lambda) = A(lambda)/E(B-V), optical/NIR, air A."""
    x = 1e4 / np.asarray(wave, dtype=float)
    y = x - 1.82
    a = (
        1
        + 0.17699 * y
        - 0.50447 * y**2
        - 0.02427 * y**3
        + 0.72085 * y**4
        + 0.01979 * y**5
        - 0.77530 * y**6
        + 0.32999 * y**7
    )
    b = (
        1.41338 * y
        + 2.28305 * y**2
        + 1.07233 * y**3
        - 5.38434 * y**4
        - 0.62251 * y**5
        + 5.30260 * y**6
        - 2.09002 * y**7
    )
    ir = x < 1.1
    a = np.where(ir, 0.574 * x**1.61, a)
    b = np.where(ir, -0.527 * x**1.61, b)
    return r_v * (a + b / r_v)


def calzetti(wave: np.ndarray, r_v: float = 4.05) -> np.ndarray:
    """Calzetti et al. (2000) k(lambda) for stellar continua, air A (0.12-2.2 micron)."""
    lam = np.asarray(wave, dtype=float) / 1e4
    blue = 2.659 * (-2.156 + 1.509 / lam - 0.198 / lam**2 + 0.011 / lam**3) + r_v
    red = 2.659 * (-1.857 + 1.040 / lam) + r_v
    return np.where(lam < 0.63, blue, red)
