"""D4000n, Lick HdeltaA and EW(H-alpha) on the 825-bin grid: known answers."""

import numpy as np
import pytest

from specdenoise.config import PreprocessConfig
from specdenoise.data.preprocess import rest_grid
from specdenoise.evaluation.indices import (
    HDELTA_A_INDEX,
    band_weights,
    d4000n,
    ew_halpha,
    halpha_continuum,
    hdelta_a,
)
from specdenoise.evaluation.linefit import _gauss_bins

EDGES, CENTRES = rest_grid(PreprocessConfig())


def test_band_weights_are_the_bin_lengths_inside_the_band():
    w = band_weights(EDGES, 4000.0, 4100.0)
    assert w.sum() == pytest.approx(100.0)
    assert np.all((w >= 0) & (w <= np.diff(EDGES) + 1e-12))


def test_d4000n_of_a_flat_fnu_spectrum_is_1_and_of_a_step_is_the_step():
    flat_fnu = 1.0 / CENTRES**2  # F_lambda of a flat F_nu
    assert d4000n(flat_fnu[None], EDGES)[0] == pytest.approx(1.0, rel=1e-3)
    step = flat_fnu * np.where(CENTRES > 3975.0, 1.8, 1.0)
    assert d4000n(step[None], EDGES)[0] == pytest.approx(1.8, rel=2e-3)
    assert d4000n(np.vstack([flat_fnu, 3 * flat_fnu]), EDGES) == pytest.approx([1.0, 1.0], rel=1e-3)


def test_hdelta_a_is_0_on_a_line_free_sloped_continuum_and_the_ew_of_an_absorption():
    cont = 1.0 + 3e-4 * (CENTRES - 4100.0)
    assert abs(hdelta_a(cont[None], EDGES)[0]) < 1e-3  # linear continuum: pseudo-continuum exact
    ew = 4.0  # A, a Gaussian absorption well inside the index band
    centre = 0.5 * sum(HDELTA_A_INDEX)
    line = cont * (1.0 - ew * _gauss_bins(EDGES, centre, 3.0))
    assert hdelta_a(line[None], EDGES)[0] == pytest.approx(ew, rel=0.03)


def test_ew_halpha_is_flux_over_the_side_band_continuum():
    cont = np.full((2, len(CENTRES)), 2.0)
    assert halpha_continuum(cont, EDGES) == pytest.approx([2.0, 2.0])
    assert ew_halpha(np.array([10.0, 0.0]), cont, EDGES) == pytest.approx([5.0, 0.0])
    assert np.isnan(ew_halpha(np.array([1.0]), np.zeros((1, len(CENTRES))), EDGES)[0])
