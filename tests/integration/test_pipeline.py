"""The pipeline end to end through the real CLI and DVC on the smoke profile (a temporary copy)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def _env():
    env = dict(os.environ)
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    env.update(GX_ANALYTICS_ENABLED="false", DVC_NO_ANALYTICS="1")
    return env


def run(args, cwd, check=True):
    res = subprocess.run(args, cwd=cwd, env=_env(), capture_output=True, text=True, timeout=1200)
    if check and res.returncode != 0:
        raise AssertionError(f"{args} failed ({res.returncode}):\n{res.stdout}\n{res.stderr}")
    return res


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    """A throw-away copy of the project (dvc.yaml, sources, profiles) on the smoke profile, under git + DVC."""
    d = tmp_path_factory.mktemp("project")
    shutil.copy(ROOT / "dvc.yaml", d / "dvc.yaml")
    shutil.copytree(ROOT / "src", d / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    shutil.copytree(ROOT / "profiles", d / "profiles")
    (d / "reports").mkdir()
    run([str(BIN / "specdenoise"), "profile", "smoke", "--out", "params.yaml"], d)
    run(["git", "init", "-q"], d)
    run([str(BIN / "dvc"), "init", "-q"], d)
    first = run([str(BIN / "dvc"), "repro"], d)
    (d / "first_repro.log").write_text(first.stdout)
    return d


def test_dvc_repro_runs_the_data_stages_and_is_then_a_no_op(project):
    first = (project / "first_repro.log").read_text()
    for stage in (
        "universe",
        "select",
        "observe",
        "preprocess",
        "noise",
        "validate",
        "summary",
        "evaluate",
        "uncertainty",
        "templates",
        "lines",
        "leaderboard",
    ):
        assert f"Running stage '{stage}'" in first
    for fam in ("pca", "wiener", "ae", "vae"):
        for dim in (2, 4):
            assert f"Running stage 'train@{fam}-{dim}'" in first
        assert f"Running stage 'train_axis@{fam}-2'" in first  # smoke: axis_dims [2]
    for stage in ("train_extra@posterior", "train_extra_axis@posterior"):  # smoke: train.extra {posterior: 4}
        assert f"Running stage '{stage}'" in first
    spectra = np.load(project / "data/processed/spectra.npz", allow_pickle=False)
    assert spectra["flux"].shape == (300, 825)
    np.testing.assert_allclose(np.linalg.norm(spectra["flux"], axis=1), 1.0, rtol=1e-5)
    noisy = np.load(project / "data/processed/noisy.npz", allow_pickle=False)
    assert noisy["noisy"].shape == (2, 300, 825)
    low = np.load(project / "data/processed/noisy_levels/sigma_0.01.npz", allow_pickle=False)
    assert low["noisy"].shape == (2, 300, 825)
    assert (project / "reports/validation.json").exists() and (project / "dvc.lock").exists()
    import json

    ev = json.loads((project / "reports/evaluation.json").read_text())
    # 5 families (the prior-only mean among them) x the smoke profile's 2 latent dims, and the posterior 4-D
    assert len(ev["rows"]) == 11 and all(np.isfinite(r["test_loss"]) for r in ev["rows"])
    mean_loss = min(r["test_loss"] for r in ev["rows"] if r["family"] == "mean")
    assert all(r["test_loss"] < mean_loss for r in ev["rows"] if r["family"] in ("pca", "wiener"))
    assert ev["champion"]["model"] == "specdenoise-vae"
    assert ev["default_champion"]["model"] == "specdenoise-posterior"
    # promoted among this pipeline's runs: the paper-level posterior model it trained (not the axis seed)
    trained = json.loads((project / "models/posterior_4/metrics.json").read_text())["run_id"]
    assert ev["default_champion"]["run_id"] == trained
    assert (project / "reports/figures/models/fig7_loss_vs_dim.png").exists()
    # seeds and levels: AE/VAE 2-D have 2 seeds at 0.04; every family has a 0.01 cell at 2-D
    cells = {(c["key"], c["level"]): c for c in ev["cells"]}
    assert cells[("ae_2", 0.04)]["n_seeds"] == 2 and cells[("vae_2", 0.04)]["test_loss_sd"] is not None
    assert cells[("pca_2", 0.04)]["n_seeds"] == 1 and cells[("ae_4", 0.04)]["n_seeds"] == 1
    assert {k for k, lv in cells if lv == 0.01} == {"mean_2", "pca_2", "wiener_2", "ae_2", "vae_2", "posterior_4"}
    assert cells[("posterior_4", 0.04)]["n_seeds"] == 2  # a seeded family; scored, not re-trained, at 0.01
    assert set(ev["rankings"]) == {"0.01", "0.04"} and "0.04" in ev["per_class"]
    metrics = json.loads((project / "reports/metrics.json").read_text())
    assert {"s0_01", "s0_04", "snr", "champion"} <= set(metrics) and metrics["snr"]["s0_01"] > 3
    assert (project / "reports/figures/models/loss_vs_level.svg").exists()
    shown = run([str(BIN / "dvc"), "metrics", "show"], project).stdout
    assert len(shown) < 2000 and "evaluation.json" not in shown  # was one table of ~100k characters
    board = (project / "reports/leaderboard.md").read_text()
    for fam in ("PCA", "WIENER", "AE", "VAE"):
        for dim in (2, 4):
            assert f"| {fam} {dim}-D" in board
    assert "(registry champion)" in board
    assert (project / "reports/leaderboard.html").read_text().startswith("<!doctype html>")
    lines = json.loads((project / "reports/lines.json").read_text())
    assert {"pca_2", "vae_4", "posterior_4", "noisy", "crb"} <= set(lines["models"])
    assert {"noisy", "mean_2", "posterior_4"} <= set(lines["recovery_levels"]["0.01"]["models"])
    per_level = json.loads((project / "reports/line_metrics.json").read_text())
    assert set(per_level) == {"sigma_0.04", "sigma_0.01"}
    assert "sigma_fill Halpha" in board and "Cramer-Rao bound" in board
    assert (project / "reports/table6.md").exists() and (
        project / "reports/figures/lines/fig9_line_fluxes.png"
    ).exists()
    second = run([str(BIN / "dvc"), "repro"], project)
    assert "Running stage" not in second.stdout
    assert "didn't change" in second.stdout or "up to date" in second.stdout.lower()


def test_same_params_give_the_same_numbers(project, tmp_path):
    out = tmp_path / "again.parquet"
    run([str(BIN / "specdenoise"), "-q", "data", "universe", "--params", "params.yaml", "--out", str(out)], project)
    import pandas as pd

    a = pd.read_parquet(project / "data/raw/universe.parquet")
    b = pd.read_parquet(out)
    pd.testing.assert_frame_equal(a, b)


def test_bad_params_give_one_line_error_and_no_output(project, tmp_path):
    bad = tmp_path / "bad.yaml"
    params = yaml.safe_load((project / "params.yaml").read_text())
    params["universe"]["n_galaxys"] = 5
    bad.write_text(yaml.safe_dump(params))
    out = tmp_path / "u.parquet"
    res = run(
        [str(BIN / "specdenoise"), "data", "universe", "--params", str(bad), "--out", str(out)], project, check=False
    )
    assert res.returncode == 2
    err = res.stderr.strip().splitlines()
    assert err == [f"error: {bad}: unknown key 'universe.n_galaxys'"]
    assert "Traceback" not in res.stderr and not out.exists()


def test_corrupt_and_missing_inputs_are_named(project, tmp_path):
    corrupt = tmp_path / "observed.npz"
    corrupt.write_bytes(b"PK\x03\x04 this is not a zip")
    out = tmp_path / "spectra.npz"
    res = run(
        [
            str(BIN / "specdenoise"),
            "data",
            "preprocess",
            "--params",
            "params.yaml",
            "--observed",
            str(corrupt),
            "--out",
            str(out),
        ],
        project,
        check=False,
    )
    assert res.returncode == 3 and f"error: {corrupt}: not a readable .npz file" in res.stderr  # data error
    assert "Traceback" not in res.stderr and not out.exists()
    res = run(
        [
            str(BIN / "specdenoise"),
            "data",
            "select",
            "--params",
            "params.yaml",
            "--catalogue",
            str(tmp_path / "none.parquet"),
        ],
        project,
        check=False,
    )
    assert res.returncode == 3 and "none.parquet: file not found" in res.stderr


def test_nan_flux_is_rejected_without_partial_output(project, tmp_path):
    obs = dict(np.load(project / "data/interim/observed.npz", allow_pickle=False))
    obs["flux"][4, 100] = np.nan
    gid = int(obs["id"][4])
    src = tmp_path / "nan.npz"
    np.savez(src, **obs)
    before = src.read_bytes()
    out = tmp_path / "spectra.npz"
    res = run(
        [str(BIN / "specdenoise"), "data", "preprocess", "--observed", str(src), "--out", str(out)],
        project,
        check=False,
    )
    assert res.returncode == 3  # a data error
    assert f"galaxy id {gid}: 1 non-finite flux value(s)" in res.stderr
    assert not out.exists() and src.read_bytes() == before  # input untouched
    assert not list(tmp_path.glob(".spectra.npz.*"))  # no temp file left behind


def test_failed_validation_names_the_expectation_and_writes_the_report(project, tmp_path):
    pre = dict(np.load(project / "data/processed/spectra.npz", allow_pickle=False))
    pre["flux"] = pre["flux"] * 1.5
    bad = tmp_path / "spectra.npz"
    np.savez(bad, **pre)
    report = tmp_path / "validation.json"
    res = run(
        [str(BIN / "specdenoise"), "data", "validate", "--spectra", str(bad), "--report", str(report)],
        project,
        check=False,
    )
    assert res.returncode == 3
    assert (
        "validation failed (spectra: expect_column_values_to_be_between(norm_value) failed for 300 of 300 rows"
        in res.stderr
    )
    assert report.exists()


def test_mzr_stages_and_dvc_views(project):
    """The DESI-like MZR test runs on the tiny sample; metrics, plots and experiments are visible to DVC."""
    import json

    first = (project / "first_repro.log").read_text()
    for stage in ("sf_select", "sf_observe", "sf_preprocess", "desi_noise", "desi", "train_desi", "mzr"):
        assert f"Running stage '{stage}'" in first
    mz = json.loads((project / "reports/mzr.json").read_text())
    assert set(mz["sets"]) == {"original", "desi", "denoised", "denoised_calibrated"}
    assert mz["model_uri"] == "models:/specdenoise-vae-desi@champion"
    assert mz["champion"]["model"] == "specdenoise-vae-desi"
    post = mz["posterior"]  # the MZR from posterior draws of the default model
    assert post["model_uri"] == "models:/specdenoise-posterior@champion" and post["n_draws"] == 40
    assert np.isfinite(post["truth"]["scatter"]) and np.isfinite(post["draws"]["scatter"])
    hier = post["hierarchical"]  # the draws re-weighted to a fitted population MZR
    assert np.isfinite(hier["scatter"]) and hier["population"]["sigma"] > 0 and 1 <= hier["ess_median"] <= 40
    assert np.isfinite(hier["population"]["beta_sfr"])
    assert hier["half_draws"]["n_draws"] == 20 and isinstance(hier["draws_converged"], bool)
    # smoke: 2 refits on resampled draws; their spread is in the stated sd, and in each realisation's
    assert hier["rho_sd"] == pytest.approx(np.hypot(hier["rho_sd_population"], hier["rho_sd_mc"]))
    chosen = post["interim"]["factor"]  # chosen by held-out likelihood, the bracket around it
    assert {f"{chosen * b:g}" for b in (1, 0.5, 2)} == set(hier["bandwidths"]) and len(
        post["interim"]["heldout_loglik"]
    ) == 7
    assert "held-out prior draws" in (project / "reports/mzr.md").read_text()
    assert post["hierarchical_mass_only"]["population"]["beta_sfr"] == 0.0  # the mass-only population
    assert set(post["by_snr_scale"]) == {"1", "3", "10"}  # the S/N axis: the same noise divided by k
    assert post["by_snr_scale"]["1"]["hierarchical"]["scatter"] == hier["scatter"]
    assert post["by_snr_scale"]["10"]["oh_sd_median"] < post["by_snr_scale"]["1"]["oh_sd_median"]
    real = post["noise_realisations"]  # the stage's own noise realisation and one more (smoke profile)
    assert real["n"] == 2 and real["rho"]["values"][0] == hier["rho"] and real["rho"]["values"][1] != hier["rho"]
    assert real["rho"]["stated_sd"][0] == hier["rho_sd"]
    assert "Over noise realisations (k = 1)" in (project / "reports/mzr.md").read_text()
    assert np.isfinite(post["truth"]["population"]["beta_sfr"])
    orig, desi = mz["sets"]["original"], mz["sets"]["desi"]
    assert 0 < orig["fraction_measurable"] <= 1 and np.isfinite(orig["scatter"])
    assert desi["fraction_measurable"] < orig["fraction_measurable"]  # DESI-like spectra lose most metallicities
    assert (project / "reports/figures/mzr/fig10_mzr.png").stat().st_size > 10_000
    assert "Mass-metallicity test" in (project / "reports/leaderboard.md").read_text()
    metrics = json.loads(run([str(BIN / "dvc"), "metrics", "show", "--json"], project).stdout)
    flat = json.dumps(metrics)
    # only the headline file is a DVC metric (per-model detail stays in evaluation.json, mzr.json, ...)
    assert "champion_loss" in flat and "s0_04" in flat and "mzr_original_scatter" not in flat
    plots = json.loads(run([str(BIN / "dvc"), "plots", "show", "--json"], project).stdout)
    assert any("loss_vs_dim.svg" in k for k in json.dumps(plots).split('"'))
    assert any("loss_vs_level.svg" in k for k in json.dumps(plots).split('"'))
    run(["git", "add", "-A"], project)
    run(["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "smoke"], project)
    exp = json.loads(run([str(BIN / "dvc"), "exp", "show", "--json"], project).stdout)[0]["data"]
    assert {"train", "mzr"} <= set(exp["params"]["params.yaml"]["data"])
    assert "champion_loss" in json.dumps(exp["metrics"]) and "test_loss" not in json.dumps(exp["metrics"])
