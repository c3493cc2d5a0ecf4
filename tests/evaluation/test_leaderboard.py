"""The leaderboard: tie-group ranks, seeds pooled, readable labels, a self-contained sortable page."""

from __future__ import annotations

import json

import pytest

from specdenoise.errors import DataError
from specdenoise.evaluation import leaderboard as lb
from specdenoise.evaluation import leaderboard_html


def _cell(key, level, loss, sd, rank, tied, seeds):
    fam, dim = key.split("_")
    return {
        "key": key,
        "family": fam,
        "latent_dim": int(dim),
        "level": level,
        "n_seeds": len(seeds),
        "test_loss": loss,
        "test_loss_sd": sd,
        "test_loss_truth": loss / 2,
        "test_loss_truth_sd": None,
        "input_loss": 1000.0,
        "rank": rank,
        "tied": tied,
        "diff_vs_leader": 0.0 if rank == 1 and not tied or key == "ae_6" else 5.0,
        "ci_vs_leader": [0.0, 0.0] if key == "ae_6" else [-1.0, 11.0],
        "seeds": [{"seed_index": i, "run_id": r, "experiment_id": "7"} for i, r in enumerate(seeds)],
    }


@pytest.fixture
def reports(tmp_path):
    ev = {
        "paper_level": 0.04,
        "rows": [{"family": "ae", "latent_dim": 6, "train_seconds": 45.0, "inference_spectra_per_s": 12345.6}],
        "cells": [
            {**_cell("ae_6", 0.01, 250.0, None, 1, False, ["run4"]), "input_loss": 300.0},
            _cell("ae_6", 0.04, 640.0, 20.0, 1, True, ["run0", "run1", "run2"]),
            _cell("vae_6", 0.04, 645.0, 30.0, 1, True, ["run3"]),
        ],
        "per_class": {
            "0.04": {"ae_6": {"emission_line": 630.0}, "vae_6": {"emission_line": 700.0}, "n": {"emission_line": 9}}
        },
        "noise_levels": {"0.04": {"snr_median": 0.894}, "0.01": {"snr_median": 3.63}},
        "champion": {"model": "specdenoise-vae", "version": 2, "run_id": "run3"},
    }
    (tmp_path / "evaluation.json").write_text(json.dumps(ev))
    (tmp_path / "mzr.json").write_text(
        json.dumps({"sets": {"denoised_calibrated": {"scatter": 0.1, "sfr_rho": float("nan")}}, "model_uri": "m"})
    )
    figs = tmp_path / "figs"
    figs.mkdir()
    (figs / "loss_vs_dim.svg").write_text("<?xml version='1.0'?><!DOCTYPE svg><svg xmlns='x'><text>dim</text></svg>")
    return tmp_path


def test_ties_seeds_and_levels_in_the_markdown(reports):
    board = lb.build(reports / "evaluation.json", mzr=reports / "mzr.json", figures_dir=reports / "figs")
    md = lb.render_markdown(board)
    assert board["levels"] == ["0.04", "0.01"]  # the paper level first
    assert "| 1= | AE 6-D | 3 | 640.0 +- 20.0 | leader |" in md
    assert "| 1= | VAE 6-D (registry champion) | 1 | 645.0 +- 30.0 | +5.0 [-1.0, +11.0] |" in md
    assert "input continuum S/N 3.63 per pixel" in md and "| 1 | AE 6-D | 1 | 250.0 |" in md
    assert "emission_line (9)" in md
    assert board["input_loss"] == 1000.0  # the paper level's, whatever the order of the cells
    assert "de-noised, calibrated errors" in md and "denoised_calibrated" not in md
    assert "nan" not in md.lower()


def test_html_is_self_contained_sortable_and_links_runs(reports):
    board = lb.build(
        reports / "evaluation.json", mzr=reports / "mzr.json", figures_dir=reports / "figs", mlflow_ui="http://h:5000"
    )
    page = leaderboard_html.render(board)
    assert page.startswith("<!doctype html>") and "<script>" in page and "table class='sortable'" in page
    assert "http://h:5000/#/experiments/7/runs/run1" in page
    assert "<svg xmlns='x'><text>dim</text></svg>" in page and "<?xml" not in page
    assert "src=" not in page and "http://cdn" not in page and "<link" not in page  # no external assets
    assert "nan" not in page.lower() and "denoised_calibrated" not in page


def test_an_old_evaluation_file_is_named(tmp_path):
    (tmp_path / "evaluation.json").write_text(json.dumps({"rows": []}))
    with pytest.raises(DataError, match="evaluation.json: no 'cells'"):
        lb.build(tmp_path / "evaluation.json")


def test_only_the_best_row_reads_leader(tmp_path):
    """Two identical models (gap exactly 0, CI [0, 0]) behind the best: the second shows its +0.0 gap,
    not "leader" (the MEAN cells of every latent dim are the same model)."""
    cells = [
        _cell("ae_6", 0.04, 640.0, None, 1, False, ["r0"]),
        {**_cell("mean_2", 0.04, 900.0, None, 2, True, ["r1"]), "diff_vs_leader": 260.0},
        {**_cell("mean_4", 0.04, 900.0, None, 2, True, ["r2"]), "diff_vs_leader": 0.0, "ci_vs_leader": [0.0, 0.0]},
    ]
    (tmp_path / "evaluation.json").write_text(json.dumps({"paper_level": 0.04, "rows": [], "cells": cells}))
    md = lb.render_markdown(lb.build(tmp_path / "evaluation.json"))
    assert "| 1 | AE 6-D | 1 | 640.0 | leader |" in md
    assert "| 2= | MEAN 4-D | 1 | 900.0 | +0.0 [+0.0, +0.0] |" in md
    assert md.count("| leader |") == 1
