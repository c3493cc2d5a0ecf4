"""The fast fitter is good enough to be the ruler (issue 13, item 5): on hand-made NOISE-FREE spectra
with known lines on a stellar continuum that is not one of its templates, every target line is
recovered within the targets of ``specdenoise bench linefit`` (|median bias| <= 0.05 dex, scatter
<= 0.07 dex), weak emission on Balmer absorption included."""

import numpy as np
import pytest
from scipy.ndimage import gaussian_filter1d

from specdenoise.config import PreprocessConfig
from specdenoise.data.preprocess import resample, rest_grid
from specdenoise.evaluation.bench_linefit import MAX_BIAS_DEX, MAX_SCATTER_DEX, TARGET_LINES
from specdenoise.evaluation.linefit import _gauss_bins, make_fast_fitter
from specdenoise.physics.constants import C_KMS, SIGMA_INST_KMS
from specdenoise.physics.grids import LINES
from specdenoise.physics.relations import calzetti

EDGES, CENTRES = rest_grid(PreprocessConfig())
#: Line ratios to H-alpha of a star-forming galaxy (the other modelled lines are left out: the
#: fitter must not invent them).
RATIOS = {
    "Halpha": 1.0,
    "Hbeta": 0.30,
    "OIII_5007": 0.5,
    "OIII_4959": 0.5 / 2.98,
    "NII_6583": 0.35,
    "NII_6548": 0.35 / 3.05,
    "SII_6716": 0.15,
    "SII_6731": 0.11,
    "Hgamma": 0.14,
}


def _continua(templates, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """``n`` noise-free continua (n, n_pix): mixtures of an old and an intermediate E-MILES SSP at
    ages and a stellar dispersion (130-170 km/s, at constant velocity) that are NOT among the
    fitter's templates (it keeps every 3rd age, dispersions 90/180/270 km/s), reddened (Calzetti,
    E(B-V) 0-0.3) and distorted by a smooth calibration residual (Legendre orders 1-3, 3 % rms);
    and the H-alpha continuum level."""
    from specdenoise.physics.templates import load_templates

    t = load_templates(templates)
    dln = 15.0 / C_KMS  # broaden at constant velocity on a 15 km/s log-lambda grid, as the universe does
    ln = np.arange(np.log(t["lam"][0]), np.log(t["lam"][-1]), dln)
    ln_edges = np.exp(np.concatenate([[ln[0] - dln / 2], ln + dln / 2]))
    old, mid = int(np.argmin(np.abs(t["ages"] - 10.0))), int(np.argmin(np.abs(t["ages"] - 1.6)))
    assert old % 3 and mid % 3  # off the fitter's age grid
    x = np.linspace(-1, 1, len(CENTRES))
    out = np.empty((n, len(CENTRES)))
    for i in range(n):
        mix = t["templates"][:, old, 4] + rng.uniform(0.0, 1.0) * t["templates"][:, mid, 3]
        fine = gaussian_filter1d(np.interp(np.exp(ln), t["lam"], mix), rng.uniform(130.0, 170.0) / 15.0)
        c = resample(EDGES, ln_edges, fine[None])[0][0]
        c *= 10 ** (-0.4 * calzetti(CENTRES) * rng.uniform(0.0, 0.3))
        c *= 1.0 + rng.normal(0.0, 0.03, 3) @ np.stack([x, 0.5 * (3 * x**2 - 1), 0.5 * (5 * x**3 - 3 * x)])
        out[i] = c / np.median(c)
    return out, out[:, np.searchsorted(CENTRES, 6563.0)]


@pytest.mark.parametrize("ew_range", [(0.5, 3.0), (3.0, 30.0)], ids=["weak-on-absorption", "strong"])
def test_fast_fitter_recovers_known_lines_of_hand_made_spectra_within_the_targets(emiles_templates, ew_range):
    """Weak emission (H-alpha EW 0.5-3 A, H-beta ~0.1-1 A: on a 2-4 A Balmer absorption) and
    strong emission (3-30 A); gas dispersions 30-200 km/s. The fitter with the signed
    principal-component continuum it had before failed the weak case (H-beta scatter 0.098 dex;
    now 0.061, H-alpha 0.046 -> 0.028)."""
    rng = np.random.default_rng(3)
    n = 120
    cont, c_ha = _continua(emiles_templates, n, rng)
    ha = rng.uniform(*ew_range, n) * c_ha  # H-alpha flux (continuum units x A)
    sig = np.hypot(rng.uniform(30.0, 200.0, n), SIGMA_INST_KMS) / C_KMS
    flux = cont.copy()
    for nm, r in RATIOS.items():
        w = LINES[nm][0]
        flux += np.stack([r * f * _gauss_bins(EDGES, w, w * s) for f, s in zip(ha, sig, strict=True)])
    fits = make_fast_fitter(emiles_templates, EDGES)(flux)
    for nm in TARGET_LINES:
        f = fits[nm]["flux"]
        assert fits[nm]["ok"].all(), nm
        d = np.log10(f / (RATIOS[nm] * ha))
        assert abs(np.median(d)) <= MAX_BIAS_DEX and np.std(d) <= MAX_SCATTER_DEX, (nm, np.median(d), np.std(d))
