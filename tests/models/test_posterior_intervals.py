"""Line-interval factors of the posterior family (:mod:`specdenoise.models.posterior_intervals`):
recovered on problems whose needed widening is known, fitted in training, saved with the model."""

from __future__ import annotations

import numpy as np
import pytest

from specdenoise.config import PreprocessConfig, UniverseConfig
from specdenoise.data.preprocess import rest_grid
from specdenoise.evaluation.draw_coverage import draw_interval
from specdenoise.models import load_model
from specdenoise.models.base import TrainingData
from specdenoise.models.linear import PCADenoiser
from specdenoise.models.posterior import PosteriorDenoiser
from specdenoise.models.posterior_intervals import (
    INTERVAL_KEYS,
    INTERVAL_SNR_EDGES,
    bin_centres,
    calibrate_intervals,
    continuum_log_snr,
    factor_table,
    interval_factor,
    needed_factor,
    scaled_interval,
)
from specdenoise.models.posterior_sim import clean_source

P, Q = 30, 3


def _draws(rng, n: int, k: np.ndarray, s: int = 30):
    """Draws (s, n) around per-spectrum centres, and truths scattered ``k`` (n,) times the draws' sd."""
    centre = rng.standard_normal(n)
    draws = centre + 0.5 * rng.standard_normal((s, n))
    truth = centre + k * 0.5 * rng.standard_normal(n)
    return draws, truth


def test_factor_per_snr_bin_recovers_the_known_widening_and_restores_68_percent():
    rng = np.random.default_rng(1)
    n = 8000
    log_snr = np.where(np.arange(n) < n // 2, 0.0, 1.0)
    k = np.where(log_snr < 0.5, 1.0, 1.5)  # bin 0: the draws are right; bin 1: 1.5x too narrow
    table = factor_table(needed_factor(*_draws(rng, n, k)), log_snr, np.array([0.5]))[0]
    assert table[0] == pytest.approx(1.0, abs=0.06) and table[1] == pytest.approx(1.5, abs=0.09)
    draws, truth = _draws(rng, n, k)  # fresh spectra
    for fac, want in ((None, (0.68, 0.49)), (table[(log_snr > 0.5).astype(int)], (0.68, 0.68))):
        lo, hi = scaled_interval(draws, fac)
        inside = (truth >= lo) & (truth <= hi)
        got = (inside[log_snr < 0.5].mean(), inside[log_snr > 0.5].mean())
        assert got == pytest.approx(want, abs=0.03), (fac is None, got)  # binomial sd 0.007


def test_factor_interpolated_in_log_snr_follows_a_trend_within_the_bins():
    """The truth's scatter grows smoothly with log S/N (k = 1 + 0.4 log S/N): the interpolated factor
    follows it inside a bin, where the bin's single factor is off by up to half the bin's change."""
    rng = np.random.default_rng(4)
    n = 60000
    log_snr = rng.uniform(-0.5, 2.5, n)
    k = 1.0 + 0.4 * log_snr
    edges = INTERVAL_SNR_EDGES
    need = needed_factor(*_draws(rng, n, k))
    arrays = {
        "interval_names": np.array(["x"]),
        "interval_edges": edges,
        "interval_centres": bin_centres(log_snr, edges),
        "interval_emis_edges": np.array([np.inf]),
        "interval_table": factor_table(need, log_snr, edges)[None],
    }
    test = np.linspace(arrays["interval_centres"][0], arrays["interval_centres"][-1], 27)  # constant beyond
    want = 1.0 + 0.4 * test
    got = interval_factor(arrays, "x", test, np.zeros(len(test)))
    binned = interval_factor({k: v for k, v in arrays.items() if k != "interval_centres"}, "x", test, np.zeros(27))
    assert np.max(np.abs(got - want)) < 0.05 < np.max(np.abs(binned - want)), (got - want, binned - want)
    draws, truth = _draws(rng, n, k)  # fresh spectra: 68 % in every third of the S/N range
    lo, hi = scaled_interval(draws, interval_factor(arrays, "x", log_snr, np.zeros(n)))
    inside = (truth >= lo) & (truth <= hi)
    for part in np.array_split(np.argsort(log_snr), 3):
        assert inside[part].mean() == pytest.approx(0.68, abs=0.02)  # binomial sd 0.003
    centres = bin_centres(np.array([0.0, 0.1, 2.0]), edges)
    assert centres[1] == pytest.approx(0.05) and centres[5] == 2.0 and centres[0] == pytest.approx(-0.4)


def test_needed_factor_edge_cases_and_sparse_bins_fall_back_to_the_pooled_factor():
    draws = np.tile(np.arange(1.0, 31.0)[:, None], (1, 4))
    draws[:, 2] = np.nan  # no interval: a miss whatever the factor
    truth = np.array([15.5, 100.0, 3.0, np.nan])
    f = needed_factor(draws, truth)
    lo, hi = draw_interval(draws[:, :2])
    assert f[0] == 0.0 and f[1] == pytest.approx((100 - 15.5) / (hi[1] - 15.5))
    assert np.isinf(f[2]) and np.isnan(f[3])
    np.testing.assert_allclose(draw_interval(draws[:, :2], factor=1.0), (lo, hi), rtol=1e-12)
    rng = np.random.default_rng(2)
    need = np.abs(rng.standard_normal(400))
    snr = np.where(np.arange(400) < 390, 0.0, 2.0)  # the upper bin has 10 entries: too few
    group = np.arange(400) % 2
    table = factor_table(need, snr, np.array([1.0]), group, 3)
    assert table.shape == (3, 2) and np.all(table[:, 1] == np.quantile(need, 0.68, method="inverted_cdf"))
    assert table[0, 0] == np.quantile(need[(snr == 0) & (group == 0)], 0.68, method="inverted_cdf")
    assert table[2, 0] == np.quantile(need[snr == 0], 0.68, method="inverted_cdf")  # an empty group: the bin's


def test_continuum_snr_is_the_median_flux_over_the_median_sigma_ignoring_masked_pixels():
    flux = np.full((2, 50), 3.0)
    ivar = np.full((2, 50), 1 / 0.3**2)
    ivar[1, :20] = 0.0
    flux[1, :20] = 1e6  # masked: plays no part
    np.testing.assert_allclose(continuum_log_snr(flux, ivar), [1.0, 1.0])


def _toy() -> PosteriorDenoiser:
    rng = np.random.default_rng(0)
    m = PosteriorDenoiser(Q, {"fixed_scale": 1.0, "rel_floor": 0.0, "mismatch": (0.0,)})
    m.set_prior(
        1.0 + 0.3 * rng.standard_normal((1, P)), 0.5 * rng.standard_normal((1, P, Q)), np.full((1, P), 0.05), [0]
    )
    return m


def _observed(m, rng, n: int, spread: float):
    """Truths with ``spread`` x the prior's latent spread, noise log-uniform over 3 decades."""
    a = m.arrays
    x = (
        a["mu"][0]
        + spread * rng.standard_normal((n, Q)) @ a["w"][0].T
        + np.sqrt(a["d"][0]) * rng.standard_normal((n, P))
    )
    sig = np.exp(rng.uniform(np.log(0.01), np.log(10.0), n))[:, None] * (0.5 + rng.random((n, P)))
    return {"flux": x + sig * rng.standard_normal((n, P)), "ivar": 1 / sig**2, "truth": x}


def _measure(s: np.ndarray) -> dict[str, np.ndarray]:
    return {"band": s[:, 10:16].sum(axis=1)}


def test_toy_prior_needs_no_widening_and_a_too_narrow_prior_is_widened_where_it_dominates():
    """Known posteriors: truths from the model's own prior get factors ~1 in every S/N bin; truths
    with twice its latent spread need wider intervals where the prior dominates (low S/N), ~1
    where the data fix the band; the fitted factors restore 68 % on fresh spectra."""
    m = _toy()
    exact = calibrate_intervals(m, _observed(m, np.random.default_rng(3), 3000, 1.0), _measure, 30, seed=4)
    assert list(exact["interval_names"]) == ["band"] and exact["interval_table"].shape == (1, 3, 6)
    t = exact["interval_table"][0]  # 18 cells of ~170 spectra: each factor's sampling sd ~0.08
    assert abs(t.mean() - 1.0) < 0.05 and np.all(np.abs(t - 1.0) < 0.3), t
    wide = calibrate_intervals(m, _observed(m, np.random.default_rng(5), 3000, 2.0), _measure, 30, seed=6)
    tab = wide["interval_table"][0]
    assert tab[:, 0].mean() > 1.4 and np.all(tab[:, 0] > 1.2) and np.all(np.abs(tab[:, -1] - 1.0) < 0.3), tab
    m.arrays.update(wide)
    obs = _observed(m, np.random.default_rng(7), 3000, 2.0)
    draws = m.sample(obs["flux"], 30, seed=8, ivar=obs["ivar"])
    band, ref = _measure(draws.reshape(-1, P)).get("band").reshape(30, -1), _measure(obs["truth"])["band"]
    snr = continuum_log_snr(obs["flux"], obs["ivar"])
    for fac in (None, m.interval_factors(["band"], obs["flux"], obs["ivar"])["band"]):
        lo, hi = draw_interval(band, factor=fac)
        low = snr < 0.0
        cov = np.mean(((ref >= lo) & (ref <= hi))[low])
        assert (cov < 0.6) if fac is None else abs(cov - 0.68) < 0.05, (fac is None, cov)
    assert np.all(m.interval_factors(["other"], obs["flux"], obs["ivar"])["other"] == 1.0)


def test_training_with_a_measure_fits_the_factors_at_both_scales_and_they_are_saved(tmp_path):
    wave = rest_grid(PreprocessConfig())[1]
    z = np.zeros((1, 825), np.float32)
    meta = {"clean_stream": clean_source(UniverseConfig(), PreprocessConfig()), "interval_measure": _band825}
    data = TrainingData(z, z, z, z, z, z, wave, np.full(825, 0.04), meta=meta)
    hyper = {"n_prior": 300, "n_kmeans": 300, "n_components": 2, "n_scale": 3, "chunk": 300, "halpha_levels": ()}
    m = PosteriorDenoiser(4, hyper | {"n_calib": 120, "n_interval_calib": 60, "interval_draws": 8})
    m.fit(data, None, seed=3)
    assert set(INTERVAL_KEYS) <= set(m.arrays) and m.arrays["interval_table_unit"].shape == (1, 3, 6)
    assert m.arrays["interval_centres"].shape == (6,) and np.all(np.diff(m.arrays["interval_centres"]) > 0)
    assert np.all(np.isfinite(m.arrays["interval_table"])) and np.all(m.arrays["interval_table"] > 0)
    m.save(tmp_path / "m")
    back = load_model(tmp_path / "m")
    x, iv = np.abs(np.random.default_rng(0).standard_normal((3, 825))), np.full((3, 825), 100.0)
    got = back.interval_factors(["band"], x, iv, "unit")["band"]
    np.testing.assert_array_equal(got, m.interval_factors(["band"], x, iv, "unit")["band"])
    mean = m.predict(x, iv, calibrated=False, scale="input")[0]  # the caller's own mean: the same lookup
    np.testing.assert_array_equal(got, back.interval_factors(["band"], x, iv, "unit", mean=mean)["band"])
    assert PCADenoiser(2).interval_factors(["band"], x, iv)["band"].tolist() == [1.0, 1.0, 1.0]  # no factors


def _band825(s: np.ndarray) -> dict[str, np.ndarray]:
    return {"band": s[:, 600:620].sum(axis=1)}
