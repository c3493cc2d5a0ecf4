"""The library posterior: importance-weighted library spectra recover a known Gaussian posterior, and
a rare class the data cannot name is under-covered while the whole population is calibrated."""

import numpy as np
import pytest

from specdenoise.evaluation.library_posterior import LIBRARY_SNRS, library_by_class, library_intervals

P, LINE = 400, slice(198, 202)  # a long continuum fixes the amplitude (to 0.25 %)


def _problem(s_lib: np.ndarray, s_obs: np.ndarray, line_amp: float, sigma: float, seed: int):
    """Spectra c (m + s e): a flat continuum m = 1, a line e of ``line_amp`` on 4 pixels, strength s;
    the library at c = 1, the observations at amplitudes c in [0.5, 2] with white noise ``sigma``."""
    rng = np.random.default_rng(seed)
    e = np.zeros(P)
    e[LINE] = line_amp
    lib = 1.0 + s_lib[:, None] * e
    c = rng.uniform(0.5, 2.0, len(s_obs))
    y = c[:, None] * (1.0 + s_obs[:, None] * e) + sigma * rng.standard_normal((len(s_obs), P))
    return lib, y, np.full(y.shape, sigma**-2), c, e


def test_library_recovers_the_exact_gaussian_posterior():
    rng = np.random.default_rng(0)
    s_lib, s_obs = rng.normal(1.0, 1.0, 20000), rng.normal(1.0, 1.0, 400)
    lib, y, ivar, c, e = _problem(s_lib, s_obs, 0.05, 0.05, seed=1)
    out = library_intervals(y, ivar, lib, {"line": s_lib}, scaled={"line"})
    # exact posterior of s at a known amplitude c: prior N(1, 1), data c s e + noise
    prec = 1.0 + c**2 * np.sum(e**2) / 0.05**2
    mean = (1.0 + c * ((y - c[:, None]) @ e) / 0.05**2) / prec
    sd = prec**-0.5
    lo, hi = c * (mean - 0.9945 * sd), c * (mean + 0.9945 * sd)  # 16-84 %: +-0.9945 sd
    assert np.median(np.abs(out["line_lo"] - lo) / (c * sd)) < 0.1
    assert np.median(np.abs(out["line_hi"] - hi) / (c * sd)) < 0.1
    inside = (c * s_obs >= out["line_lo"]) & (c * s_obs <= out["line_hi"])
    assert abs(inside.mean() - 0.68) < 0.07  # 400 spectra: binomial sd 0.023
    assert np.median(out["ess"]) > 2000  # the posterior is about half the prior's width


def test_a_rare_class_the_data_cannot_name_is_under_covered():
    rng = np.random.default_rng(2)

    def mixture(n):
        rare = rng.random(n) < 0.1
        return np.where(rare, rng.normal(2.0, 0.2, n), rng.normal(0.0, 0.2, n)), rare

    s_lib, _ = mixture(20000)
    s_obs, rare = mixture(1500)
    lib, y, ivar, c, _ = _problem(s_lib, s_obs, 0.01, 0.05, seed=3)  # line S/N ~1 for the rare class
    out = library_intervals(y, ivar, lib, {"line": s_lib}, scaled={"line"})
    inside = (c * s_obs >= out["line_lo"]) & (c * s_obs <= out["line_hi"])
    assert abs(inside.mean() - 0.68) < 0.05  # right given the data, on average
    assert inside[rare].mean() < 0.5 and np.mean(c[rare] * s_obs[rare] > out["line_hi"][rare]) > 0.4


def test_library_by_class_reports_every_class_and_snr():
    from tests.conftest import TINY as TINY_PARAMS

    from specdenoise.config import parse_params
    from specdenoise.data.preprocess import rest_grid
    from specdenoise.evaluation.linefit import make_fast_fitter
    from specdenoise.evaluation.posterior_bench import class_pool
    from specdenoise.evaluation.posterior_bench_report import _library_table

    params = parse_params(TINY_PARAMS)
    edges, wave = rest_grid(params.preprocess)
    pool = class_pool(params, 10, 3)
    res = library_by_class(params, pool, wave, make_fast_fitter(None, edges), seed=3, n_library=400)
    assert res["n_library"] == 400 and sum(res["library_mix"].values()) == 400
    assert list(res["bins"]) == [f"sky/snr{s:g}" for s in LIBRARY_SNRS]
    for row in res["bins"].values():
        assert row["ess_median"] >= 1.0
        for c in np.unique(pool[1]):
            for k in ("Halpha", "O3N2"):
                cell = row[c][k]
                if cell["n"] == 0:  # no finite truth (O3N2 of a galaxy without lines)
                    assert cell["coverage"] is None
                    continue
                assert 0.0 <= cell["coverage"] <= 1.0
                assert cell["coverage"] + cell["below"] + cell["above"] == pytest.approx(1.0)
    table = _library_table(res, None)
    assert len(table) == 5 + 2 + len(LIBRARY_SNRS) and "ESS" in table[5]
