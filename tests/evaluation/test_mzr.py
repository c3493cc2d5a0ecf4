"""O3N2 metallicities (paper eq. 6), the reference relation and the SFR trend, on known answers."""

from __future__ import annotations

import numpy as np
import pytest

from specdenoise.evaluation.mzr import curti, evaluate_mzr, fit_reference, metallicities, o3n2, pp04_o3n2, scatter_stats


def test_o3n2_and_eq6_by_hand():
    # [OIII]/Hb = 2, [NII]/Ha = 0.2 -> O3N2 = log10(10) = 1 -> 8.73 - 0.32 = 8.41
    assert o3n2(4.0, 2.0, 1.0, 5.0) == pytest.approx(1.0)
    assert pp04_o3n2(1.0) == pytest.approx(8.41)
    # [OIII]/Hb = 0.5, [NII]/Ha = 0.5 -> O3N2 = 0 -> 8.73
    assert pp04_o3n2(o3n2(1.0, 2.0, 3.0, 6.0)) == pytest.approx(8.73)
    assert np.isnan(o3n2(-1.0, 2.0, 1.0, 5.0))


def test_metallicity_errors_and_snr_cut():
    flux = {"Halpha": 30.0, "Hbeta": 10.0, "OIII_5007": 10.0, "NII_6583": 3.0}
    errs = {"Halpha": 1.0, "Hbeta": 1.0, "OIII_5007": 0.5, "NII_6583": 0.3}
    fits = {
        k: {
            "flux": np.array([flux[k], flux[k]]),
            "err": np.array([errs[k], errs[k] * 3 if k == "Halpha" else errs[k]]),
            "ok": np.array([True, True]),
        }
        for k in flux
    }
    r = metallicities(fits, snr_min=15)
    expect_err = 0.32 / np.log(10) * np.sqrt((1 / 30) ** 2 + 0.1**2 + 0.05**2 + 0.1**2)
    assert r["oh"][0] == pytest.approx(8.73 - 0.32 * np.log10(1.0 / 0.1))
    assert r["oh_err"][0] == pytest.approx(expect_err)
    assert r["snr_halpha"].tolist() == pytest.approx([30.0, 10.0])
    assert r["measurable"].tolist() == [True, False]  # S/N 10 < 15


def _population(n=3000, seed=0, slope=-0.15, scatter=0.05):
    rng = np.random.default_rng(seed)
    lm = rng.uniform(9.0, 11.2, n)
    dsfr = rng.normal(0, 0.3, n)
    lsfr = 0.8 * (lm - 10) + dsfr
    ref = dict(z0=8.8, log_m0=10.0, gamma=0.3, beta=1.5)
    oh = curti(lm, **ref) + slope * dsfr + rng.normal(0, scatter, n)
    return lm, lsfr, oh, ref


def test_reference_fit_and_sfr_trend_recovered():
    lm, lsfr, oh, ref = _population()
    fit = fit_reference(lm, oh)
    grid = np.linspace(9.2, 11.0, 10)
    assert np.max(np.abs(curti(grid, **fit) - curti(grid, **ref))) < 0.02
    st = scatter_stats(lm, oh, lsfr, fit, n_bins=8)
    assert st["scatter"] == pytest.approx(np.hypot(0.05, 0.15 * 0.3), rel=0.1)
    assert st["sfr_slope"] == pytest.approx(-0.15, abs=0.03)
    assert st["sfr_rho"] < -0.5
    # without the SFR term the trend vanishes
    lm2, lsfr2, oh2, _ = _population(slope=0.0)
    assert abs(scatter_stats(lm2, oh2, lsfr2, fit_reference(lm2, oh2), 8)["sfr_rho"]) < 0.08


def test_evaluate_mzr_three_sets():
    lm, lsfr, oh, _ = _population(n=500)
    # lines consistent with oh through eq. 6: O3N2 = (8.73 - oh) / 0.32,
    # split as [OIII]/Hb = 10**O3N2 * 0.3 and [NII]/Ha = 0.3
    x = 10 ** ((8.73 - oh) / 0.32)
    ha = np.full(len(oh), 100.0)
    line = {"Halpha": ha, "Hbeta": ha / 2.86, "NII_6583": 0.3 * ha, "OIII_5007": x * 0.3 * ha / 2.86}
    good = {k: {"flux": v, "err": v / 100, "ok": np.ones(len(v), bool)} for k, v in line.items()}
    noisy = {k: {"flux": v, "err": v / (5 + 20 * (lm > 10.5)), "ok": np.ones(len(v), bool)} for k, v in line.items()}
    res = evaluate_mzr({"original": good, "desi": noisy}, lm, lsfr, oh, snr_min=15, n_bins=6)
    assert res["sets"]["original"]["fraction_measurable"] == 1.0
    assert res["sets"]["desi"]["fraction_measurable"] == pytest.approx(np.mean(lm > 10.5))
    assert res["sets"]["original"]["scatter"] == pytest.approx(res["truth"]["scatter"], rel=0.05)
    assert abs(res["sets"]["desi"]["vs_original_median"]) < 1e-9


def test_vs_true_separates_a_measured_metallicity_from_one_supplied_by_mass_and_sfr():
    from specdenoise.evaluation.mzr_truth import pp04_o3n2, vs_true

    rng = np.random.default_rng(5)
    n = 800
    lm, lsfr = rng.uniform(9, 11, n), rng.normal(0, 0.4, n)
    o3_true = -1.5 * (lm - 10) + 0.5 * lsfr + rng.normal(0, 0.3, n)  # scatter at fixed mass and SFR
    oh_true = pp04_o3n2(o3_true)
    err = np.full(n, 0.05)
    every = np.ones(n, bool)
    measured = vs_true(oh_true + rng.normal(0, 0.05, n), err, every, o3_true, lm, lsfr)
    assert measured["o3n2"]["slope_ols"] == pytest.approx(1.0, abs=0.03)
    assert measured["oh_fit"]["oh_true"] == pytest.approx(1.0, abs=0.03)
    assert measured["oh_coverage"] == pytest.approx(0.683, abs=0.05)  # honest 1-sigma errors
    # a de-noiser that returns the population relation: right on average, no information
    prior = pp04_o3n2(-1.5 * (lm - 10) + 0.5 * lsfr)
    from_prior = vs_true(prior, np.full(n, 0.005), every, o3_true, lm, lsfr)
    assert abs(from_prior["oh_fit"]["oh_true"]) < 0.02
    assert from_prior["o3n2"]["slope_ols"] < 0.9 and from_prior["o3n2"]["spread_ratio"] < 0.95
    assert from_prior["oh_coverage"] < 0.1  # tiny stated errors: the truth is rarely inside
    assert vs_true(prior, err, np.zeros(n, bool), o3_true, lm, lsfr)["n"] == 0
