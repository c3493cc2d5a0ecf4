"""Line and O/H interval coverage from posterior draws: a toy whose exact posterior is known."""

from __future__ import annotations

import numpy as np
import pytest

from specdenoise.evaluation.draw_coverage import draw_coverage_tables
from specdenoise.evaluation.mzr_truth import MZR_LINES


def _fit(spectra):
    """A 'fitter' for toy spectra whose pixels are the four line fluxes themselves; like the fast
    fitter it flags a non-positive flux not ``ok``."""
    s = np.asarray(spectra, dtype=float)
    return {ln: {"flux": s[:, i], "ok": np.isfinite(s[:, i]) & (s[:, i] > 0)} for i, ln in enumerate(MZR_LINES)}


class _Posterior:
    """Draws N(mean, (k sd)^2) per pixel: k = 1 is the exact posterior of truth ~ N(mean, sd^2)."""

    calibrated_draws = True

    def __init__(self, mean, sd, k):
        self.mean, self.sd, self.k = mean, sd, k

    def sample(self, x, n, seed, ivar=None, scale="input"):
        assert scale == "unit" and ivar.shape == x.shape
        rows = x[:, 0].astype(int)  # the toy's spectra carry their row number
        rng = np.random.default_rng(seed)
        m, s = self.mean[rows], self.sd[rows]
        return m[None] + self.k * s[None] * rng.standard_normal((n, *m.shape))


@pytest.fixture(scope="module")
def toy():
    rng = np.random.default_rng(0)
    n = 3000
    truth = 10 ** rng.uniform(1, 2, (n, 4))
    sd = 0.05 * truth
    mean = truth + sd * rng.standard_normal((n, 4))  # truth | data ~ N(mean, sd^2)
    x = np.column_stack([np.arange(n, dtype=float), np.zeros((n, 3))])  # row ids, to find the chunk's rows
    return x, truth, mean, sd


@pytest.mark.parametrize(("k", "expected"), [(1.0, 0.6827), (0.5, 0.3829)])
def test_draw_intervals_hold_the_truth_as_often_as_their_width_says(toy, k, expected):
    x, truth, mean, sd = toy
    model = _Posterior(mean, sd, k)
    true = {ln: truth[:, i] * 2.0 for i, ln in enumerate(MZR_LINES)}  # physical = normalised x norm
    snr = {ln: np.full(len(x), 5.0) for ln in MZR_LINES}
    res = draw_coverage_tables(
        model, x, np.ones_like(x), _fit, true, np.full(len(x), 2.0), snr, MZR_LINES, (0.0, np.inf), 60, 1
    )
    for ln in MZR_LINES:
        (cell,) = res["lines"][ln]
        assert cell["n"] == len(x)
        assert cell["coverage"] == pytest.approx(expected, abs=0.03)
    (oh,) = res["oh"]
    assert oh["n"] == len(x)
    # O/H is a log ratio of four lines with independent 5 % errors: its draws are as well calibrated
    assert oh["coverage"] == pytest.approx(expected, abs=0.04)


def test_weak_lines_keep_their_negative_draws():
    """Lines at 1 sigma: many draws are negative; dropping them (the fitter's ``ok``) truncates the
    posterior and moves both ends of the interval (coverage 0.79 here instead of 0.68)."""
    rng = np.random.default_rng(4)
    n = 3000
    truth = np.full((n, 4), 1.0)
    sd = np.ones((n, 4))
    mean = truth + sd * rng.standard_normal((n, 4))
    x = np.column_stack([np.arange(n, dtype=float), np.zeros((n, 3))])
    true = {ln: truth[:, i] for i, ln in enumerate(MZR_LINES)}
    snr = {ln: np.ones(n) for ln in MZR_LINES}
    res = draw_coverage_tables(
        _Posterior(mean, sd, 1.0), x, np.ones_like(x), _fit, true, np.ones(n), snr, MZR_LINES, (0.0, np.inf), 60, 1
    )
    for ln in MZR_LINES:
        assert res["lines"][ln][0]["coverage"] == pytest.approx(0.6827, abs=0.03)
