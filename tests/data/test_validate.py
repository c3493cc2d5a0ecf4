"""great-expectations suites pass on good data and fail, readably, on corrupted data."""

import copy

import numpy as np
import pytest

from specdenoise.data.validate import check, failure_summary, run_validation
from specdenoise.errors import ValidationFailed


@pytest.fixture(scope="module")
def good(tiny_params, tiny_processed, tiny_noisy, tiny_sample):
    sample, report = tiny_sample
    return tiny_params, tiny_processed, tiny_noisy, sample, report


def test_suites_pass_on_good_data(good):
    params, pre, nz, sample, report = good
    res = run_validation(params, pre, nz, sample, report)
    assert res["success"], failure_summary(res)
    assert set(res["suites"]) == {"spectra", "wavelength", "catalogue", "bins", "noise"}
    for lvl in res["noise_levels"]:
        assert lvl["std_over_sigma"] == pytest.approx(1.0, abs=0.05)
    check(res, "reports/validation.json")  # does not raise


def _failed(res):
    return {
        (s, i["expectation"], i["column"]) for s, b in res["suites"].items() for i in b["results"] if not i["success"]
    }


def test_nan_flux_fails_spectra_suite(good):
    params, pre, nz, sample, report = good
    bad = dict(pre)
    bad["flux"] = pre["flux"].copy()
    bad["flux"][3, 10] = np.nan
    res = run_validation(params, bad, nz, sample, report)
    assert not res["success"]
    assert ("spectra", "expect_column_values_to_be_between", "n_nonfinite") in _failed(res)
    msg = failure_summary(res)
    assert "spectra: expect_column_values_to_be_between(n_nonfinite) failed for 1 of" in msg
    with pytest.raises(ValidationFailed, match="validation failed"):
        check(res, "r.json")


def test_wrong_noise_level_fails_noise_suite(good):
    params, pre, nz, sample, report = good
    bad = dict(nz)
    resid = nz["noisy"] * nz["renorm"][..., None] - pre["flux"][None]
    bad["noisy"] = ((pre["flux"][None] + 1.2 * resid) / nz["renorm"][..., None]).astype(np.float32)
    res = run_validation(params, pre, bad, sample, report)
    assert ("noise", "expect_column_values_to_be_between", "std_over_sigma") in _failed(res)


def test_unnormalised_and_out_of_range_fail(good):
    params, pre, nz, sample, report = good
    bad = dict(pre)
    bad["flux"] = pre["flux"] * 1.01
    bad_sample = sample.copy()
    bad_sample.loc[0, "z"] = 0.2
    bad_report = copy.deepcopy(report)
    bad_report["bins"][0]["selected"] += 1
    res = run_validation(params, bad, nz, bad_sample, bad_report)
    failed = _failed(res)
    assert ("spectra", "expect_column_values_to_be_between", "norm_value") in failed
    assert ("catalogue", "expect_column_values_to_be_between", "z") in failed
    assert ("bins", "expect_column_values_to_be_between", "mismatch") in failed


def test_non_monotonic_wavelength_fails(good):
    params, pre, nz, sample, report = good
    bad = dict(pre)
    w = pre["wave"].copy()
    w[[100, 101]] = w[[101, 100]]
    bad["wave"] = w
    res = run_validation(params, bad, nz, sample, report)
    assert ("wavelength", "expect_column_values_to_be_increasing", "wave") in _failed(res)
