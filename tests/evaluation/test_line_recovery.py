"""The lines stage's recovery report on the tiny universe: identity, prior-only mean, coverage."""

import json

import numpy as np
import pytest

from specdenoise.data.preprocess import rest_grid
from specdenoise.evaluation.line_recovery import INDICES, RECOVERY_LINES, SNR_EDGES, stage_recovery
from specdenoise.evaluation.linefit import make_fast_fitter
from specdenoise.models import get_family
from specdenoise.training.splits import training_data


@pytest.fixture(scope="module")
def report(tiny_params, tiny_sample, tiny_processed, tiny_noisy):
    params = tiny_params.model_copy(update={"train": tiny_params.train.model_copy(update={"val_size": 20})})
    sample, _ = tiny_sample
    data, test = training_data(tiny_processed, tiny_noisy, params)
    edges, _ = rest_grid(params.preprocess)
    fit = make_fast_fitter(None, edges, params.lines.sigma_kms)  # windowed fits: no templates needed
    mean = get_family("mean")(0)
    mean.fit(data, params.train, seed=0)
    truth = np.asarray(test["truth"], dtype=np.float64)
    sets = {"identity": truth, "mean_0": mean.denoise(test["x"]), "noisy": test["x"]}
    norm = np.asarray(tiny_processed["norm"])[test["index"]]
    return stage_recovery(params, tiny_processed, tiny_noisy, sample, fit, sets, {"mean_0": mean}, test, norm, edges)


def test_the_identity_on_noise_free_spectra_recovers_everything(report):
    ident = report["models"]["identity"]
    for ln in RECOVERY_LINES:
        m = ident["lines"][ln]["vs_noise_free_fit"]
        if m["n"] >= 5:
            assert m["slope_ols"] == pytest.approx(1.0) and m["bias_median"] == pytest.approx(0.0, abs=1e-12)
            assert m["spread_ratio"] == pytest.approx(1.0) and m["info_gain"] == pytest.approx(1.0)
    for k in INDICES:
        m = ident["indices"][k]["vs_noise_free"]
        assert m["slope_ols"] == pytest.approx(1.0) and m["info_gain"] == pytest.approx(1.0), k


def test_the_prior_only_mean_has_slope_0_on_indices_and_is_the_baseline(report):
    assert report["baseline"] == "mean"
    mean = report["models"]["mean_0"]
    for k in ("d4000n", "hdelta_a"):  # one spectrum for every galaxy: a constant index
        m = mean["indices"][k]["vs_noise_free"]
        assert m["slope_ols"] == pytest.approx(0.0, abs=1e-9) and m["info_gain"] == pytest.approx(0.0, abs=1e-12)
    # line fluxes of the mean spectrum scale with each galaxy's normalisation only: no gain by definition
    assert mean["lines"]["Halpha"]["vs_truth"]["info_gain"] == pytest.approx(0.0, abs=1e-12)
    # and the real de-noisers' truth comparisons exist, per class too
    assert set(report["models"]["noisy"]["by_class"]) <= {
        "emission_line",
        "absorption",
        "quiescent",
        "narrow_line_agn",
        "broad_line_agn",
    }


def test_coverage_per_snr_bin_for_models_with_a_stated_uncertainty(report):
    cov = report["models"]["mean_0"]["coverage"]
    assert cov["method"] == "residual"
    assert "coverage" not in report["models"]["identity"]
    for ln in RECOVERY_LINES:
        bins = cov["lines"][ln]
        assert [b["snr_lo"] for b in bins] == list(SNR_EDGES[:-1]) and bins[-1]["snr_hi"] is None
        assert sum(b["n"] for b in bins) > 0
        for b in bins:
            assert np.isnan(b["coverage"]) or 0.0 <= b["coverage"] <= 1.0
    assert len(cov["oh"]) == len(SNR_EDGES) - 1
    assert report["input_snr_median"]["Halpha"] > 0
    json.dumps(report)  # the report is plain JSON (no numpy scalars left, no infinities)


def test_mzr_block_against_the_true_o3n2_states_which_errors_make_measurable(report):
    cal = report["models"]["mean_0"]["mzr"]
    formal = report["models"]["noisy"]["mzr"]
    assert cal["measurable_by"].startswith("calibrated") and formal["measurable_by"].startswith("fit residuals")
    for block in (cal, formal):
        assert 0 < block["n_galaxies"] <= 40 and 0.0 <= block["fraction_measurable"] <= 1.0
        assert set(block["oh_fit"]) == {"intercept", "oh_true", "log_mass", "log_sfr", "n"}
