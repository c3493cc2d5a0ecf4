"""The ``uncertainty`` stage: calibrate every model's per-pixel sigma on the VALIDATION split
and measure 1- and 2-sigma coverage on the TEST split (overall and per wavelength region),
before and after calibration (methods and calibration in :mod:`specdenoise.evaluation.calibration`).

Masked pixels (ivar = 0 in the preprocessed target, i.e. interpolated over) are left out of
both calibration and coverage.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from specdenoise.config import Params
from specdenoise.data.artefacts import Spectra, load_noisy
from specdenoise.errors import DataError
from specdenoise.evaluation.calibration import (
    LEVEL_1SIGMA,
    LEVEL_2SIGMA,
    REGIONS,
    Calibration,
    calibrate,
    coverage,
    raw_sigma,
)
from specdenoise.evaluation.stats import spearman
from specdenoise.io import save_json, save_text
from specdenoise.models import store
from specdenoise.tracking.runs import CALIBRATION, add_to_runs
from specdenoise.training.splits import training_data


def assess(
    model: Any,
    name: str,
    val: dict[str, np.ndarray],
    test: dict[str, np.ndarray],
    wave: np.ndarray,
    n_samples: int,
    seed: int,
    window: int,
) -> tuple[Calibration, dict[str, Any]]:
    """Calibrate one model on validation data and measure its test coverage.

    Parameters
    ----------
    val, test : dict
        ``x`` (noise-added input), ``truth`` (noise-free), ``good`` (unmasked pixels), all
        (n, n_pix).

    Returns
    -------
    (Calibration, dict)
        The calibration and the report entry: method, ``before`` (raw sigma, VAE only) and
        ``after`` coverage on the test split, ``validation`` coverage after calibration.
    """
    pv, rv, method = raw_sigma(model, val["x"], n_samples, seed)
    scale = calibrate(pv, val["truth"], rv, val["good"], window)
    cal = Calibration(method, scale, n_samples, seed, window, len(val["x"]), name)
    pt, rt, _ = raw_sigma(model, test["x"], n_samples, seed + 1)
    entry: dict[str, Any] = {
        "model": name,
        "family": getattr(model, "family", ""),
        "method": method,
        "n_val": len(val["x"]),
        "n_test": len(test["x"]),
    }
    entry["before"] = coverage(pt, test["truth"], rt, wave, test["good"]) if method == "vae-posterior" else None
    entry["after"] = coverage(pt, test["truth"], rt * scale[None, :], wave, test["good"])
    entry["validation_after"] = {
        k: v for k, v in coverage(pv, val["truth"], rv * scale[None, :], wave, val["good"]).items() if k != "regions"
    }
    if method == "vae-posterior":
        # does the posterior spread carry per-spectrum information? rank correlation of
        # predicted sigma with the actual error, pixel by pixel over test spectra
        err = np.abs(pt - test["truth"])
        entry["sigma_error_spearman"] = spearman(rt[test["good"]], err[test["good"]])
    return cal, entry


def split_arrays(pre: Any, noisy: Any, params: Params) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Validation and test arrays (``x``, ``truth``, ``good``) exactly as training split them."""
    data, test = training_data(pre, noisy, params)
    vi, ti = data.meta["val_index"], test["index"]
    x = noisy["noisy"][params.train.realisation]
    truth = np.asarray(pre["truth"], dtype=np.float32)
    good = np.asarray(pre["ivar"]) > 0
    val = {"x": x[vi].astype(np.float32), "truth": truth[vi], "good": good[vi]}
    tst = {"x": x[ti].astype(np.float32), "truth": truth[ti], "good": good[ti]}
    return val, tst


def run_uncertainty(
    params: Params, pre: Any, noisy: Any, models_dir: Path, calibration_dir: Path, tracking: bool = False
) -> dict[str, Any]:
    """Calibrate every model in ``models_dir`` and measure its coverage.

    Writes ``calibration_dir/<family>_<dim>.json`` for each model (and, with ``tracking``, the
    same as ``calibration.json`` in the model's MLflow run, so that ``models:/`` URIs find
    it). Returns the report (``models``: one entry per model).
    """
    uc = params.uncertainty
    wave = np.asarray(pre["wave"], float)
    val, test = split_arrays(pre, noisy, params)
    entries, metrics, texts = [], {}, {}
    for tm in store.list_models(models_dir, paper_only=True):
        cal, entry = assess(tm.load(), tm.name, val, test, wave, uc.n_samples, uc.seed, uc.window)
        cal.save(Path(calibration_dir) / f"{tm.name}.json")
        entry["run_id"] = run_id = tm.run_id()
        if run_id:
            texts[run_id] = {CALIBRATION: json.dumps(cal.to_json())}
            metrics[run_id] = {f"coverage_{k}": entry["after"][k] for k in ("within_1sigma", "within_2sigma")}
        entries.append(entry)
    if not entries:
        raise DataError(f"{models_dir}: no trained models (no */model)")
    if tracking and texts:
        add_to_runs(params, metrics=metrics, texts=texts)
    return {
        "level_1sigma": LEVEL_1SIGMA,
        "level_2sigma": LEVEL_2SIGMA,
        "n_samples": uc.n_samples,
        "seed": uc.seed,
        "window": uc.window,
        "regions": [list(r) for r in REGIONS],
        "models": {e["model"]: e for e in entries},
    }


def run(
    params: Params,
    models_dir: Path,
    spectra: Path,
    noisy: Path,
    calibration_dir: Path,
    out: Path,
    out_md: Path,
    tracking: bool = True,
) -> tuple[str, int]:
    """The ``uncertainty`` stage; returns the Markdown table and the number of models."""
    pre = Spectra.load(spectra).require("truth", "split", source=str(spectra))
    rep = run_uncertainty(params, pre, load_noisy(noisy), models_dir, calibration_dir, tracking=tracking)
    save_json(out, rep)
    text = render_markdown(rep)
    save_text(out_md, text)
    return text, len(rep["models"])


def render_markdown(report: dict[str, Any]) -> str:
    """Coverage table: test-split fraction of truth pixels within 1 / 2 sigma."""
    out = [
        "# Predictive uncertainty: test-set coverage",
        "",
        f"Calibrated on the validation split (per-pixel 68.27 % quantile, window +-{report['window']} px); "
        f"VAE sigma from {report['n_samples']} posterior samples.",
        "",
        "| model | method | 1 sigma before | 1 sigma after | 2 sigma after | median sigma |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for name, e in report["models"].items():
        b = e["before"]["within_1sigma"] if e.get("before") else None
        a = e["after"]
        cells = [
            name,
            e["method"],
            "-" if b is None else f"{100 * b:.1f} %",
            f"{100 * a['within_1sigma']:.1f} %",
            f"{100 * a['within_2sigma']:.1f} %",
            f"{a['median_sigma']:.3g}",
        ]
        out.append("| " + " | ".join(cells) + " |")
    return "\n".join(out) + "\n"
