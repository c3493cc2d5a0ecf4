"""Coverage tables against chance: a calibrated method's cells are binomial, a miscalibrated one's are not."""

from __future__ import annotations

from math import comb

import numpy as np
import pytest

from specdenoise.evaluation.coverage_chance import coverage_vs_chance, within_probability
from specdenoise.evaluation.posterior_bench import coverage_summary
from specdenoise.evaluation.posterior_bench_report import _chance_table


def test_within_probability_is_the_binomial_mass_of_the_band():
    # 25 spectra: coverages 16/25 = 0.64, 17/25 = 0.68 and 18/25 = 0.72 lie in 0.63-0.73
    exact = sum(comb(25, k) * 0.68**k * 0.32 ** (25 - k) for k in (16, 17, 18))
    assert within_probability(25) == pytest.approx(exact, rel=1e-12)
    assert within_probability(2) == 0.0  # 0, 0.5 or 1: never within
    assert 0.94 < within_probability(300) < 0.95 and 0.80 < within_probability(150) < 0.82
    with pytest.raises(ValueError, match="0 spectra"):
        within_probability(0)
    with pytest.raises(ValueError, match="no cells"):
        coverage_vs_chance([])


def test_calibrated_cells_match_the_expectation_and_miscalibrated_ones_do_not():
    """90 cells of 300 spectra whose truth falls in the interval 68 % of the time: over 400 such
    tables the count within 0.63-0.73 averages the expectation and the chi^2 p-value is uniform. With
    half the cells at 62 % the chi^2 rules chance out and the mean deviation says "too narrow"."""
    rng = np.random.default_rng(3)
    within, p_values = [], []
    for _ in range(400):
        got = coverage_vs_chance([(k / 300, 300) for k in rng.binomial(300, 0.68, 90)])
        within.append(got["within"])
        p_values.append(got["p_value"])
    assert abs(np.mean(within) - got["expected_within"]) < 0.3, (np.mean(within), got["expected_within"])
    assert np.std(within) == pytest.approx(got["expected_within_sd"], rel=0.15)
    assert 0.02 < np.mean(np.array(p_values) < 0.05) < 0.09
    off = coverage_vs_chance([(k / 300, 300) for k in rng.binomial(300, np.repeat([0.68, 0.62], 45))])
    assert off["p_value"] < 1e-6 and off["mean_z"] < -1 and off["within"] < off["expected_within"] - 10


def test_the_bench_summary_and_its_table_read_every_cell():
    """:func:`coverage_summary` of a bench result: the universe's cells (2 bins x 5 lines), each line's,
    each class's H-alpha and O3N2, and the prior check; the report shows them."""

    def lines(cov):
        return {k: {"coverage": cov, "n": 300} for k in ("Halpha", "Hbeta", "OIII_5007", "NII_6583", "O3N2")}

    res = {
        "universe": {"bins": {"sky/snr1": {"lines": lines(0.68)}, "sky/snr3": {"lines": lines(0.60)}}},
        "per_class": {"n": {"agn": 150}, "bins": {"sky/snr1": {"agn": {"lines": lines(0.50)}}}},
        "prior_check": {"bins": {"sky/snr1": {"lines": lines(0.68)}}},
    }
    cv = coverage_summary(res)
    assert cv["universe"]["n_cells"] == 10 and cv["universe"]["within"] == 5
    assert cv["universe_per_line"]["OIII_5007"]["mean_coverage"] == pytest.approx(0.64)
    assert cv["per_class"]["agn"]["n_cells"] == 2 and cv["per_class"]["agn"]["within"] == 0
    assert cv["prior_check"]["within"] == 5 and cv["prior_check"]["chi2"] == 0.0
    table = "\n".join(_chance_table(cv))
    assert "| universe (all) | 10 | 5 |" in table and "| class agn (H-alpha, O3N2) | 2 | 0 |" in table
    assert "universe_uncalibrated" not in cv and "| universe (all), draws' own" not in table  # no factors: no rows


def test_the_summary_keeps_the_draws_own_intervals_beside_the_scaled_ones():
    def lines(cov, raw):
        keys = ("Halpha", "Hbeta", "OIII_5007", "NII_6583", "O3N2")
        return {k: {"coverage": cov, "coverage_uncalibrated": raw, "n": 300} for k in keys}

    res = {
        "universe": {"bins": {"sky/snr1": {"lines": lines(0.68, 0.60)}}},
        "per_class": {"n": {"agn": 150}, "bins": {"sky/snr1": {"agn": {"lines": lines(0.68, 0.75)}}}},
        "prior_check": {"bins": {"sky/snr1": {"lines": lines(0.68, 0.68)}}},
    }
    cv = coverage_summary(res)
    assert cv["universe"]["within"] == 5 and cv["universe_uncalibrated"]["within"] == 0
    assert cv["universe_per_line_uncalibrated"]["Halpha"]["mean_coverage"] == pytest.approx(0.60)
    assert cv["per_class"]["agn"]["within"] == 2 and cv["per_class_uncalibrated"]["agn"]["mean_z"] > 2
    table = "\n".join(_chance_table(cv))
    assert "| universe (all), draws' own intervals | 5 | 0 |" in table
    assert "| class agn (H-alpha, O3N2), draws' own | 2 | 0 |" in table
