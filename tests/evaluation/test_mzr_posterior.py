"""The MZR from posterior draws against the true-flux O3N2 on toy cases with known answers."""

from __future__ import annotations

import numpy as np
import pytest

from specdenoise.evaluation.mzr_posterior import interim_densities, posterior_mzr
from specdenoise.evaluation.mzr_truth import MZR_LINES


def _fit(spectra):
    """A 'fitter' for toy spectra whose pixels are the four line fluxes themselves."""
    s = np.asarray(spectra, dtype=float)
    return {ln: {"flux": s[:, i], "ok": s[:, i] > 0} for i, ln in enumerate(MZR_LINES)}


class _Draws:
    """Known posteriors: draws are ``truth * exp(spread * N(0, 1))`` per line; the mean is ``mean``."""

    def __init__(self, truth, spread, mean=None):
        self.truth, self.spread, self.mean = truth, spread, mean

    def sample(self, x, n, seed, ivar=None, calibrated=True):
        rng = np.random.default_rng(seed)
        return self.truth[None] * np.exp(self.spread * rng.standard_normal((n, *self.truth.shape)))

    def sample_prior(self, n, seed):
        """The population's spectra, resampled: an interim prior that knows nothing of mass."""
        rng = np.random.default_rng(seed)
        return self.truth[rng.integers(0, len(self.truth), n)] * np.exp(0.1 * rng.standard_normal((n, 4)))

    def denoise_given(self, x, ivar=None):
        return self.truth if self.mean is None else np.broadcast_to(self.mean, self.truth.shape)


@pytest.fixture(scope="module")
def galaxies():
    rng = np.random.default_rng(0)
    n = 3000
    lm = rng.uniform(9, 11, n)
    ls = 0.8 * (lm - 10) + 0.3 * rng.standard_normal(n)
    o3 = 0.5 - 0.8 * (lm - 10) + 0.4 * (ls - 0.8 * (lm - 10)) + 0.15 * rng.standard_normal(n)  # FMR-like
    ha = 10 ** rng.uniform(1, 2, n)
    order = {"Halpha": ha, "Hbeta": ha / 2.86, "NII_6583": 10**-0.3 * ha}
    order["OIII_5007"] = 10**o3 * order["Hbeta"] * order["NII_6583"] / order["Halpha"]
    flux = np.stack([order[ln] for ln in MZR_LINES], axis=1)
    return flux, order, lm, ls


def test_exact_draws_recover_the_truth(galaxies):
    flux, true, lm, ls = galaxies
    model = _Draws(flux, 0.0)
    res = posterior_mzr(
        model, flux, np.ones_like(flux), _fit, true, lm, ls, 3, 1, interim_densities(model, _fit, 2, 20000)
    )
    assert res["diff"]["scatter"] == pytest.approx(0, abs=1e-9) and res["diff"]["rho"] == pytest.approx(0, abs=1e-9)
    assert res["meets"] and res["draws"]["valid_fraction"] == 1.0


def test_prior_mean_point_estimates_lose_the_scatter_and_noisy_draws_widen_it(galaxies):
    flux, true, lm, ls = galaxies
    mean = flux.mean(axis=0)
    model = _Draws(flux, 0.2, mean=mean)
    res = posterior_mzr(
        model, flux, np.ones_like(flux), _fit, true, lm, ls, 5, 2, interim_densities(model, _fit, 3, 20000)
    )
    assert res["posterior_mean"]["scatter"] == pytest.approx(0, abs=1e-9)  # one O/H for every galaxy
    # draws 0.2 in ln of each line around the truth: O/H noise 0.32 x 2 x 0.087 = 0.056 dex in quadrature
    assert res["draws"]["scatter"] == pytest.approx(np.hypot(res["truth"]["scatter"], 0.056), abs=0.01)
    assert not res["meets"] and res["draws"]["n_draws"] == 5


def test_the_point_estimate_is_left_out_when_not_asked_for(galaxies):
    flux, true, lm, ls = galaxies

    class _NoPoint(_Draws):
        def denoise_given(self, x, ivar=None):
            raise AssertionError("the posterior mean was computed")

    model = _NoPoint(flux, 0.0)
    interims = interim_densities(model, _fit, 2, 20000)
    res = posterior_mzr(model, flux, np.ones_like(flux), _fit, true, lm, ls, 3, 1, interims, point_estimate=False)
    assert "posterior_mean" not in res and res["meets"]


class _LinkedPrior:
    """A prior whose O3N2 falls with log H-alpha (slope -1, scatter 0.2): O/H rises with it, +0.32 dex per dex."""

    def sample_prior(self, n, seed):
        rng = np.random.default_rng(seed)
        log_ha = 1.5 + 0.3 * rng.standard_normal(n)
        o3n2 = 0.5 - (log_ha - 1.5) + 0.2 * rng.standard_normal(n)
        ha = 10**log_ha
        order = {"Halpha": ha, "Hbeta": ha / 2.86, "NII_6583": 10**-0.3 * ha}
        order["OIII_5007"] = 10**o3n2 * order["Hbeta"] * order["NII_6583"] / order["Halpha"]
        return np.stack([order[ln] for ln in MZR_LINES], axis=1)


def _log_ha(spectra, fits):
    return np.log10(fits["Halpha"]["flux"])


def test_the_interim_density_is_the_priors_conditional_given_the_covariate():
    """Conditional on the covariate the KDE interim recovers the known Gaussian (median slope +0.32 dex
    per dex, sd 0.064 dex, a little wider from the kernel); without one (NaN) or outside the prior's
    range it is the marginal (sd 0.115 dex)."""
    dens = interim_densities(_LinkedPrior(), _fit, 3, 8000, _log_ha, factors=(1.0, 0.5))
    assert list(dens) == [1.0, 0.5]
    logpdf = dens[1.0]
    grid = np.linspace(7.9, 9.5, 801)

    def moments(c):  # median and half the 16-84 % width (the floor's far tails move a variance)
        cdf = np.cumsum(np.exp(logpdf(grid, np.full(grid.shape, c))))
        q16, q50, q84 = np.interp([0.16, 0.5, 0.84], cdf / cdf[-1], grid)
        return float(q50), float(q84 - q16) / 2

    (m_lo, s_lo), (m_hi, s_hi) = moments(1.3), moments(1.7)
    assert m_hi - m_lo == pytest.approx(0.32 * 0.4, abs=0.02)
    assert m_lo == pytest.approx(8.73 - 0.32 * 0.7, abs=0.01)
    assert 0.06 < s_lo < 0.072 and 0.06 < s_hi < 0.072
    assert moments(np.nan)[1] == pytest.approx(0.115, abs=0.01)
    assert moments(5.0)[1] == pytest.approx(0.115, abs=0.01)  # outside the prior's range: the marginal
