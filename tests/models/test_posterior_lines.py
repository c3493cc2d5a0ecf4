"""The posterior prior's line loadings (``train.posterior.line_rank``).

Known signal: a population whose continuum carries the variance and whose emission line (five
bins wide) varies in strength. The top loadings follow the continuum, so without line loadings the
line's variation falls into the per-pixel ``D``, independent between its bins, and the prior's
spread of the line flux is a fraction of the population's; with them it matches."""

import numpy as np
import pytest

from specdenoise.config import PreprocessConfig
from specdenoise.data.preprocess import rest_grid
from specdenoise.models.posterior import PosteriorDenoiser
from specdenoise.models.posterior_fit import fit_prior, line_loadings, line_windows
from specdenoise.models.posterior_prior import MISMATCH_LINES, N_LEGENDRE, mismatch_basis

WAVE = rest_grid(PreprocessConfig())[1]
LINE = int(np.argmin(np.abs(WAVE - 5006.8)))


def _population(n: int, seed: int) -> np.ndarray:
    """Unit-norm spectra (n, P): a continuum with large random tilts and curvature, plus [OIII]
    5007 with a Gaussian profile (sd 1.2 bins) and a peak uniform in 0-0.6 of the continuum."""
    rng = np.random.default_rng(seed)
    x = np.linspace(-1, 1, len(WAVE))
    cont = 1.0 + rng.normal(0, 0.4, (n, 1)) * x[None] + rng.normal(0, 0.3, (n, 1)) * x[None] ** 2
    profile = np.exp(-0.5 * ((np.arange(len(WAVE)) - LINE) / 1.2) ** 2)
    spec = cont + rng.uniform(0.0, 0.6, (n, 1)) * profile[None]
    return spec / np.linalg.norm(spec, axis=1, keepdims=True)


def _flux(spectra: np.ndarray) -> np.ndarray:
    """Continuum-subtracted line flux (n,): the 5 central bins less 5 x the mean of two side bands."""
    side = np.r_[LINE - 12 : LINE - 6, LINE + 7 : LINE + 13]
    return spectra[:, LINE - 2 : LINE + 3].sum(axis=1) - 5 * spectra[:, side].mean(axis=1)


def _prior_spread(line_rank: int) -> float:
    """sd of the line flux in draws from the fitted prior over the population's own sd."""
    pop = _population(6000, 0)
    lines = line_windows(WAVE, 2)
    arrays, _ = fit_prior([(pop, None)], 2, 2, 6000, seed=0, line_idx=lines, line_rank=line_rank)
    m = PosteriorDenoiser(2, {"mismatch": (0.0,)})
    m.set_prior(**arrays)
    return float(np.std(_flux(m.sample_prior(20000, 1))) / np.std(_flux(pop)))


def test_line_loadings_give_the_prior_the_population_s_line_spread():
    without, with_lines = _prior_spread(0), _prior_spread(2)
    assert without < 0.8, without  # the problem: the line varies pixel by pixel in D
    assert abs(with_lines - 1.0) < 0.08, (with_lines, without)


def test_line_loadings_recover_a_planted_line_covariance():
    rng = np.random.default_rng(3)
    p, idx = 60, np.arange(20, 31)
    v = np.zeros(p)
    v[idx] = np.exp(-0.5 * ((idx - 25) / 1.5) ** 2)
    v /= np.linalg.norm(v)
    resid = 4.0 * np.outer(v, v) + np.diag(rng.uniform(0.05, 0.15, p))
    w = line_loadings(resid, idx, 2)
    assert w.shape == (p, 2) and np.all(w[np.setdiff1d(np.arange(p), idx)] == 0)
    assert abs(abs(w[:, 0] @ v) - 2.0) < 0.1  # sqrt of the planted variance, along the planted shape
    assert np.sum(w[:, 1] ** 2) < 0.1  # nothing else planted: the second column is the diagonal's scatter
    assert line_loadings(resid, idx[:1], 3).shape == (p, 3)  # fewer window pixels than columns: zeros


def test_line_windows_cover_the_lines_on_the_grid_only():
    idx = line_windows(WAVE, 2)
    for line in MISMATCH_LINES:
        assert np.argmin(np.abs(WAVE - line)) in idx
    short = WAVE[WAVE < 5000]
    assert short[-1] < 5006.8 and line_windows(short, 1).max() < len(short)  # lines past the grid's end skipped
    assert len(line_windows(WAVE[WAVE > 7400], 2)) == 0  # no line on that grid
    assert np.array_equal(line_windows(WAVE, 2, (5006.8,)), np.arange(LINE - 2, LINE + 3))  # a given list


@pytest.mark.parametrize(("shift", "sigma"), [(0.5, 1.0), (0.0, 2.0), (0.4, 1.6)])
def test_mismatch_basis_passes_a_shifted_or_broadened_line(shift, sigma):
    """A real line off the bin centre or wider than the universe's: the mismatch basis's three
    columns at [OIII] 5007 (amplitude, shift, broad) leave < 3 % of its power, the amplitude
    column alone > 10 % (what made the z = 0.37 DESI target's [OIII] wings fail chi^2)."""
    wave = np.geomspace(3700.0, 7900.0, 825)
    pix = np.arange(825)
    centre = np.interp(np.log(5006.8), np.log(wave), pix)
    cols = mismatch_basis(np.ones((1, 825)) / np.sqrt(825), wave)[0, :, N_LEGENDRE:]
    peak = np.abs(cols).argmax(axis=0)
    near = np.flatnonzero(np.abs(peak - centre) <= 3)
    assert len(near) == 3
    line = np.exp(-0.5 * ((pix - centre - shift) / sigma) ** 2)

    def left(sel):
        a, *_ = np.linalg.lstsq(cols[:, sel], line, rcond=None)
        return np.sum((line - cols[:, sel] @ a) ** 2) / np.sum(line**2)

    even = [j for j in near if cols[:, j].min() >= 0]  # the amplitude and broad columns (not the shift)
    amplitude = [min(even, key=lambda j: np.sum(cols[:, j] > 0.5 * cols[:, j].max()))]
    assert left(near) < 0.03
    assert left(amplitude) > 0.10
