"""The leaderboard's recovery tables and the compact line metrics carry the recovery statistics
of each set: an identity de-noiser reads slope 1 / gain 1, the prior-only mean slope 0 / gain 0."""

from __future__ import annotations

import numpy as np

from specdenoise.evaluation.recovery import recovery_metrics
from specdenoise.evaluation.recovery_tables import LINES, line_metrics, tables


def _rec():
    rng = np.random.default_rng(0)
    true = 10 ** rng.uniform(0, 3, 500)
    prior = np.full_like(true, np.exp(np.mean(np.log(true))))
    sets = {"vae_4": true.copy(), "mean_2": prior, "noisy": true * 10 ** rng.normal(0, 0.3, true.size)}
    models = {}
    for name, rec in sets.items():
        m = recovery_metrics(true, rec, baseline=prior)
        models[name] = {"lines": {ln: {"vs_truth": m, "vs_noise_free_fit": m} for ln in LINES}}
    return {"models": models, "snr_edges": [0, 1, 3, None]}


def test_line_metrics_follow_the_galaxy_or_the_population():
    lm = line_metrics(_rec())
    assert list(lm) == ["noisy", "mean_2", "vae_4"]  # input first, then the prior-only model
    assert lm["vae_4"]["ha_slope"] == 1.0 and lm["vae_4"]["ha_gain"] == 1.0
    assert abs(lm["mean_2"]["ha_slope"]) < 1e-9 and abs(lm["mean_2"]["ha_gain"]) < 1e-9
    assert 0.8 < lm["noisy"]["ha_slope"] < 1.2 and lm["noisy"]["o3n2_slope"] is None


def test_tables_label_rows_and_show_slopes():
    out = tables(_rec())
    title, heads, rows = out[0]
    assert "Slope" in title and heads[0] == "set" and len(heads) == 1 + len(LINES)
    assert rows[0][0] == "noise-added input" and rows[2][0] == "vae_4" and rows[2][1] == "1.00 (1.00)"
    assert rows[1][1].startswith(("0.00", "-0.00"))
    assert tables({}) == []
