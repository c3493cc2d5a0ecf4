"""The bench's miss diagnostics recover a known signal: intervals that follow the galaxy hold ~68 %
in every tertile of the truth with equal sides; intervals that follow the population (the same for
every galaxy) fail at both ends of the truth, each on its own side."""

import numpy as np

from specdenoise.evaluation.posterior_bench import line_metrics, miss_sides, tertile_coverage
from specdenoise.evaluation.posterior_bench_report import _miss_table

LINES = ("Halpha", "Hbeta", "OIII_5007", "NII_6583")


def _pixel_fitter(spectra, sigma=None):
    """A 'fitter' whose line flux is pixel j of the spectrum (j = the line's index), error 0.1."""
    x = np.asarray(spectra, float)
    return {ln: {"flux": x[:, j], "err": np.full(len(x), 0.1)} for j, ln in enumerate(LINES)}


def _obs(truth_ha, rng):
    n = len(truth_ha)
    truth = np.column_stack([truth_ha, rng.uniform(0.5, 1.5, (n, 3))])
    return {"truth": truth, "flux": truth + 0.1 * rng.standard_normal(truth.shape), "ivar": np.full(truth.shape, 100.0)}


def test_intervals_that_follow_the_galaxy_hold_every_tertile_with_equal_sides():
    rng = np.random.default_rng(0)
    obs = _obs(rng.uniform(1.0, 3.0, 6000), rng)
    centre = obs["truth"] + 0.1 * rng.standard_normal(obs["truth"].shape)  # a calibrated posterior: its
    draws = centre[None] + 0.1 * rng.standard_normal((40, *centre.shape))  # centre errs by its own sd
    ha = line_metrics(_pixel_fitter, obs, centre, draws)["Halpha"]
    assert all(abs(c - 0.68) < 0.04 for c in ha["coverage_tertiles"]), ha
    assert abs(ha["below"] - ha["above"]) < 0.03 and abs(ha["coverage"] + ha["below"] + ha["above"] - 1) < 1e-12
    assert abs(ha["median_ratio"] - 1) < 0.02


def test_intervals_that_follow_the_population_fail_at_both_ends_of_the_truth():
    rng = np.random.default_rng(1)
    obs = _obs(rng.uniform(1.0, 3.0, 6000), rng)
    pop = np.linspace(1.0, 3.0, 40)[:, None]  # every galaxy gets the population's draws
    draws = np.broadcast_to(pop[:, :, None], (40, 6000, 4)).copy()
    ha = line_metrics(_pixel_fitter, obs, obs["truth"], draws)["Halpha"]
    low, mid, high = ha["coverage_tertiles"]
    assert mid > 0.9 and low < 0.6 and high < 0.6, ha["coverage_tertiles"]
    # the low tertile falls out below, the high one above: the truth's extremes are pulled to the middle
    lo, hi = np.quantile(pop[:, 0], [0.16, 0.84])
    t = obs["truth"][:, 0]
    assert miss_sides(t[t < 1.5], np.full((t < 1.5).sum(), lo), np.full((t < 1.5).sum(), hi))["above"] == 0.0
    rows = _miss_table({"white/snr1": {"lines": {"Halpha": ha}}})
    assert rows[-1].startswith("| white/snr1 |") and "/" in rows[-1]


def test_tertile_coverage_is_per_tertile_of_the_truth():
    ref = np.arange(9.0)
    inside = np.array([1, 1, 1, 0, 0, 0, 1, 0, 1], bool)
    assert tertile_coverage(ref, inside) == [1.0, 0.0, 2 / 3]


def test_draws_the_fitter_cannot_measure_do_not_blank_the_ratio():
    rng = np.random.default_rng(2)
    obs = _obs(rng.uniform(1.0, 3.0, 200), rng)
    draws = obs["truth"][None] + 0.1 * rng.standard_normal((20, *obs["truth"].shape))
    draws[3, :50, 0] = np.nan  # one draw of 50 spectra unmeasurable
    ha = line_metrics(_pixel_fitter, obs, obs["truth"], draws)["Halpha"]
    assert abs(ha["median_ratio"] - 1) < 0.02


def test_spread_check_tells_right_sized_from_over_confident_draws():
    rng = np.random.default_rng(3)
    obs = _obs(rng.uniform(1.0, 3.0, 4000), rng)
    centre = obs["truth"] + 0.1 * rng.standard_normal(obs["truth"].shape)  # errs by the input's 0.1
    right = centre[None] + 0.1 * rng.standard_normal((40, *centre.shape))
    narrow = centre[None] + 0.05 * rng.standard_normal((40, *centre.shape))  # claims twice the precision
    ok = line_metrics(_pixel_fitter, obs, centre, right)["Halpha"]
    bad = line_metrics(_pixel_fitter, obs, centre, narrow)["Halpha"]
    assert abs(ok["sd_over_input_err"] - 1) < 0.05 and abs(ok["z68"] - 1) < 0.08, ok
    assert abs(bad["sd_over_input_err"] - 0.5) < 0.03 and bad["z68"] > 1.8, bad
