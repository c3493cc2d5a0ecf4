"""Nebular line ratios of retired (LINER-like) galaxies and narrow-line AGN."""

from __future__ import annotations

import numpy as np

from specdenoise.physics.grids import LINE_NAMES, LINE_WAVES
from specdenoise.physics.relations import kewley01


def line_index(name: str) -> int:
    """Column of line ``name`` in the grids' line arrays."""
    return LINE_NAMES.index(name)


def line_wave(name: str) -> float:
    return float(LINE_WAVES[line_index(name)])


def liner_ratios(rng: np.random.Generator, n: int) -> np.ndarray:
    """Diffuse LINER-like line ratios per unit H-alpha, shape (n, n_lines)."""
    out = np.zeros((n, len(LINE_NAMES)))
    g = rng.standard_normal((n, 4))
    hb = 1 / 2.86
    out[:, line_index("Halpha")] = 1.0
    out[:, line_index("Hbeta")] = hb
    out[:, line_index("Hgamma")] = 0.468 * hb
    out[:, line_index("Hdelta")] = 0.259 * hb
    out[:, line_index("Hepsilon")] = 0.159 * hb
    nii = 10 ** (0.15 + 0.15 * g[:, 0])
    out[:, line_index("NII_6583")] = nii
    out[:, line_index("NII_6548")] = nii / 3.05
    o3 = hb * 10 ** (0.1 + 0.2 * g[:, 1])
    out[:, line_index("OIII_5007")] = o3
    out[:, line_index("OIII_4959")] = o3 / 2.98
    out[:, line_index("OIII_4363")] = o3 * 0.02
    s2 = 10 ** (-0.05 + 0.12 * g[:, 2])
    out[:, line_index("SII_6716")] = s2 * 0.55
    out[:, line_index("SII_6731")] = s2 * 0.45
    o2 = hb * 10 ** (0.6 + 0.15 * g[:, 3])
    out[:, line_index("OII_3726")] = o2 * 0.45
    out[:, line_index("OII_3729")] = o2 * 0.55
    out[:, line_index("OI_6300")] = 0.2
    out[:, line_index("NeIII_3869")] = 0.1 * o3
    return out


def nlr_ratios(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Seyfert/LINER narrow-line-region ratios per unit L([OIII]5007), above Kewley 2001.

    Returns ``(ratios (n, n_lines), log [NII]/Ha, log [OIII]/Hb)``.
    """
    g = rng.standard_normal((n, 6))
    x = np.clip(0.0 + 0.2 * g[:, 0], -0.45, 0.6)
    y = 0.45 + 0.3 * g[:, 1]
    y = np.maximum(y, np.where(x < 0.47, kewley01(x), -1.0) + 0.15)
    out = np.zeros((n, len(LINE_NAMES)))
    o3 = np.ones(n)
    hb = o3 / 10**y
    ha = 3.1 * hb
    out[:, line_index("OIII_5007")] = o3
    out[:, line_index("OIII_4959")] = o3 / 2.98
    out[:, line_index("OIII_4363")] = o3 * 10 ** (-1.7 + 0.2 * g[:, 2])
    out[:, line_index("Hbeta")] = hb
    out[:, line_index("Halpha")] = ha
    out[:, line_index("Hgamma")] = 0.468 * hb
    out[:, line_index("Hdelta")] = 0.259 * hb
    out[:, line_index("Hepsilon")] = 0.159 * hb
    out[:, line_index("NII_6583")] = ha * 10**x
    out[:, line_index("NII_6548")] = ha * 10**x / 3.05
    s2 = ha * 10 ** (-0.3 + 0.15 * g[:, 3])
    out[:, line_index("SII_6716")] = s2 * 0.52
    out[:, line_index("SII_6731")] = s2 * 0.48
    o2 = o3 * 10 ** (-0.3 + 0.3 * g[:, 4])
    out[:, line_index("OII_3726")] = o2 * 0.45
    out[:, line_index("OII_3729")] = o2 * 0.55
    out[:, line_index("OI_6300")] = ha * 10 ** (-1.0 + 0.2 * g[:, 5])
    out[:, line_index("NeIII_3869")] = 0.1 * o3
    out[:, line_index("HeII_4686")] = 0.25 * hb
    out[:, line_index("HeI_5876")] = 0.12 * hb
    return out, x, y
