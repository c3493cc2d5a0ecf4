"""The class-separability measure: it recovers a known separation and finds none where there is none."""

import numpy as np
import pytest

from specdenoise.evaluation.class_separability import features, separability

LINES = ("Halpha", "Hbeta", "OIII_5007", "NII_6583")


def _two_classes(shift: float, n: int = 400, seed: int = 0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(2 * n, 5))
    x[n:, 2] += shift  # one informative feature, shifted by `shift` sd for class b
    return x, np.array(["a"] * n + ["b"] * n)


def test_separable_classes_are_told_apart():
    res = separability(*_two_classes(4.0), seed=1)
    # two unit Gaussians 4 sd apart: the Bayes accuracy is Phi(2) = 0.977, the AUC Phi(4 / sqrt 2) = 0.998
    assert res["accuracy"] > 0.93 and min(res["auc"].values()) > 0.97
    assert res["chance"] == pytest.approx(0.5)


def test_identical_classes_are_at_chance():
    res = separability(*_two_classes(0.0), seed=1)
    # 400 per class: the AUC of a useless score has sd ~0.02 about 0.5
    assert abs(res["auc"]["a"] - 0.5) < 0.08 and abs(res["accuracy"] - 0.5) < 0.08


def test_partial_overlap_gives_the_expected_auc():
    res = separability(*_two_classes(1.0, n=2000), seed=2)
    # AUC of a 1-sd shift between unit Gaussians: Phi(1 / sqrt 2) = 0.760
    assert res["auc"]["b"] == pytest.approx(0.760, abs=0.03)


def test_separability_is_reproducible_and_needs_two_classes():
    x, c = _two_classes(1.0)
    assert separability(x, c, seed=3) == separability(x, c, seed=3)
    with pytest.raises(ValueError, match="at least two classes"):
        separability(x, np.array(["a"] * len(x)), seed=3)


def test_features_hold_detection_snr_fluxes_and_ratios():
    n = 3
    inp = {ln: np.array([1.0, 2.0, np.nan]) for ln in LINES} | {
        f"{ln}_err": np.array([0.5, np.inf, 0.1]) for ln in LINES
    }
    den = {
        "Halpha": np.full(n, 0.1),
        "Hbeta": np.full(n, 0.01),
        "OIII_5007": np.full(n, 0.1),
        "NII_6583": np.full(n, 0.01),
    }
    x = features(inp, den, np.zeros(n), np.ones((n, 3)), LINES)
    assert x.shape == (n, 1 + 3 + 2 * len(LINES) + 2) and np.isfinite(x).all()
    # H-alpha: detection S/N asinh(1 / 0.5) for the first, 0 where the error is not finite or the flux is NaN
    assert x[:, 4] == pytest.approx([np.arcsinh(2.0), 0.0, 0.0])
    assert x[0, 5] == pytest.approx(-1.0)  # log10 of the posterior mean's H-alpha
    assert x[0, -2] == pytest.approx(-1.0) and x[0, -1] == pytest.approx(1.0)  # [NII]/Ha, [OIII]/Hb
    no_ratio = features(inp, den, np.zeros(n), np.ones((n, 3)), ("Halpha",))
    assert no_ratio.shape == (n, 1 + 3 + 2 + 2) and (no_ratio[:, -2:] == 0).all()
