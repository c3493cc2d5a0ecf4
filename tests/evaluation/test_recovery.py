"""Shrinkage and information-gain metrics on hand-made cases with known answers."""

import numpy as np
import pytest

from specdenoise.evaluation.recovery import MAX_THEILSEN, coverage_by_bin, recovery_metrics

RNG = np.random.default_rng(3)
TRUE_FLUX = 10 ** RNG.normal(1.0, 0.5, 600)  # log-normal fluxes, 1e-17 erg/s/cm^2


def test_a_denoiser_returning_the_population_mean_has_slope_0_and_gain_0():
    mean_log = np.mean(np.log10(TRUE_FLUX))
    m = recovery_metrics(TRUE_FLUX, np.full_like(TRUE_FLUX, 10**mean_log))
    assert m["slope_ols"] == pytest.approx(0.0, abs=1e-12)
    assert m["slope_robust"] == pytest.approx(0.0, abs=1e-12)
    assert m["info_gain"] == pytest.approx(0.0, abs=1e-12)
    assert m["spread_ratio"] == pytest.approx(0.0, abs=1e-12)
    # shrinkage signature: faint tertile biased high, bright tertile low
    faint, _, bright = m["bias_tertiles"]
    assert faint > 0.3 and bright < -0.3


def test_the_identity_on_noise_free_input_has_slope_1_bias_0_spread_1_gain_1():
    m = recovery_metrics(TRUE_FLUX, TRUE_FLUX.copy())
    for key, value in (("slope_ols", 1.0), ("slope_robust", 1.0), ("spread_ratio", 1.0), ("info_gain", 1.0)):
        assert m[key] == pytest.approx(value, abs=1e-12), key
    assert m["bias_median"] == 0.0 and m["bias_tertiles"] == [0.0, 0.0, 0.0]
    assert m["n"] == len(TRUE_FLUX) and m["frac_valid"] == 1.0


def test_a_known_shrinkage_gives_slope_one_half():
    x = RNG.normal(0.0, 1.0, 4000)
    y = 0.3 + 0.5 * x + RNG.normal(0.0, 0.1, x.size)
    m = recovery_metrics(x, y, log=False)
    assert m["slope_ols"] == pytest.approx(0.5, abs=0.01)
    assert m["slope_robust"] == pytest.approx(0.5, abs=0.01)  # on MAX_THEILSEN of the 4000 points
    assert x.size > MAX_THEILSEN
    assert m["spread_ratio"] == pytest.approx(np.hypot(0.5, 0.1), abs=0.02)
    # the faint tertile comes out too high, the bright one too low
    faint, middle, bright = m["bias_tertiles"]
    assert faint > 0.6 and bright < 0.0 and faint > middle > bright
    assert middle == pytest.approx(0.3, abs=0.05)  # y - x = 0.3 - 0.5 x, x ~ 0 in the middle tertile


def test_gain_is_measured_against_the_given_prior_only_baseline():
    x = RNG.normal(0.0, 1.0, 500)
    y = x + RNG.normal(0.0, 0.5, x.size)  # MSE 0.25
    prior = np.zeros_like(x)  # the prior-only prediction: MSE = var(x) = 1
    m = recovery_metrics(x, y, baseline=prior, log=False)
    assert m["info_gain"] == pytest.approx(1 - np.mean((y - x) ** 2) / np.mean(x**2), rel=1e-12)
    assert 0.65 < m["info_gain"] < 0.85
    # worse than the prior: negative gain
    assert recovery_metrics(x, -x, baseline=prior, log=False)["info_gain"] < 0


def test_outliers_move_the_ols_slope_but_not_the_robust_one():
    x = RNG.normal(0.0, 1.0, 400)
    y = x.copy()
    y[np.argsort(x)[-20:]] = -5.0  # failed fits of the brightest objects
    m = recovery_metrics(x, y, log=False)
    assert m["slope_robust"] == pytest.approx(1.0, abs=0.05)
    assert m["slope_ols"] < 0.5


def test_unusable_values_are_left_out_and_counted():
    y = TRUE_FLUX.copy()
    y[:60] = -1.0  # negative fitted fluxes have no log
    y[60:90] = np.nan
    m = recovery_metrics(TRUE_FLUX, y)
    assert m["n"] == len(y) - 90 and m["frac_valid"] == pytest.approx(1 - 90 / len(y))
    assert m["slope_ols"] == pytest.approx(1.0)
    few = recovery_metrics(TRUE_FLUX[:4], TRUE_FLUX[:4])
    assert few["n"] == 4 and np.isnan(few["slope_ols"]) and np.isnan(few["info_gain"])


def test_coverage_by_bin_counts_truths_inside_the_interval_per_snr_bin():
    true = np.zeros(8)
    lo = np.array([-1, -1, 1, 1, -1, -1, -1, np.nan])
    hi = np.array([1, 1, 2, 2, 1, 1, -0.5, 1])
    snr = np.array([0.5, 0.5, 0.5, 0.5, 5, 5, 5, 5])
    cov = coverage_by_bin(true, lo, hi, snr, (0, 1, 3, np.inf))
    assert [c["n"] for c in cov] == [4, 0, 3]
    assert cov[0]["coverage"] == 0.5 and np.isnan(cov[1]["coverage"])
    assert cov[2]["coverage"] == pytest.approx(2 / 3)
    assert cov[0]["median_width"] == pytest.approx(1.5)
