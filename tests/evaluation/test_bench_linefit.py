"""``specdenoise bench linefit``: bad input fails with one named error and writes nothing;
the accuracy statistics on a hand-made case."""

import numpy as np
import pytest

from faults.harness import assert_fails, cli, fingerprint
from specdenoise.evaluation.bench_linefit import REPORT_LINES, accuracy


def test_non_positive_counts_are_usage_errors(tmp_path):
    out = tmp_path / "bench_linefit.json"
    for flag in ("--n", "--n-time"):
        res = cli("bench", "linefit", flag, "0", "--out", out)
        assert_fails(res, 2, "--n")
    assert not out.exists()


def test_missing_spectra_is_a_data_error_naming_the_file(tmp_path):
    out = tmp_path / "reports" / "bench_linefit.json"
    before = fingerprint(tmp_path)
    res = cli("bench", "linefit", "--spectra", tmp_path / "nope.npz", "--out", out, cwd=tmp_path)
    assert_fails(res, 3, "nope.npz")
    assert fingerprint(tmp_path) == before


def test_accuracy_counts_failed_fits_and_measures_bias_against_the_truth():
    rng = np.random.default_rng(0)
    n = 300
    true = {ln: 10 ** rng.uniform(0.0, 2.0, n) for ln in REPORT_LINES}  # 1e-17 erg/s/cm^2
    norm = np.full(n, 2.0)
    fits = {ln: {"flux": true[ln] / norm * 10**0.1, "ok": np.ones(n, bool)} for ln in REPORT_LINES}
    fits["Halpha"]["ok"][:30] = False
    acc = accuracy(fits, true, norm, 3.0, classes=np.array(["a", "b"] * (n // 2)), ew=np.full(n, 7.0))
    bright = true["Halpha"] > 3.0
    assert acc["Halpha"]["frac_ok"] == pytest.approx((bright[30:]).sum() / bright.sum())
    for ln in REPORT_LINES:
        assert acc[ln]["median_bias_dex"] == pytest.approx(0.1) and acc[ln]["scatter_dex"] == pytest.approx(
            0.0, abs=1e-12
        )
        assert acc[ln]["bias_tertiles_dex"] == pytest.approx([0.1] * 3)
    assert set(acc["NII_6583"]["by_class"]) == {"a", "b"}
    bins = acc["Halpha"]["by_ew_halpha"]
    assert [b["n"] for b in bins] == [0, 0, 0, acc["Halpha"]["n"], 0] and bins[-1]["ew_hi"] is None
