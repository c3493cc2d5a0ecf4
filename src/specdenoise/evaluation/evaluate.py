"""The ``evaluate`` stage: collect every trained model's test metrics, promote the champion
of the registry, draw the figures (:mod:`specdenoise.evaluation.figures`) and write the tables."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from specdenoise.config import Params
from specdenoise.data.artefacts import CLASS_COLUMNS, Spectra, load_noisy, load_sample
from specdenoise.errors import DataError
from specdenoise.evaluation import headline, rankings
from specdenoise.evaluation.figures import figures
from specdenoise.io import load_json, save_json, save_text
from specdenoise.models import store
from specdenoise.tracking import set_champion
from specdenoise.tracking.runs import log_stage_run

#: Paper Tables 4 (AE) and 5 (VAE): latent dimension -> (dropout, units per layer).
PAPER_HYPER = {
    "ae": {
        2: (0.8, [900, 800, 400, 300]),
        4: (0.5, [900, 900, 500, 400]),
        6: (0.7, [1000, 900, 800, 800]),
        10: (0.9, [900, 800, 800, 600]),
    },
    "vae": {
        2: (0.8, [1000, 900, 600, 200]),
        4: (0.7, [1000, 1000, 700, 500]),
        6: (0.5, [800, 800, 700, 600]),
        10: (0.9, [900, 900, 600, 400]),
    },
}


def collect(models_dir: Path) -> list[dict[str, Any]]:
    """The ``record.json`` of every paper model (``<family>_<dim>``) in ``models_dir``."""
    records = [tm.record() for tm in store.list_models(models_dir, paper_only=True)]
    if not records:
        raise DataError(f"{models_dir}: no trained models (no <family>_<dim>/model)")
    return records


def summary_table(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    rows = []
    for r in records:
        m = r["metrics"]
        rows.append(
            {
                "family": r["family"],
                "latent_dim": r["latent_dim"],
                "test_loss": m["test_loss"],
                "test_loss_truth": m["test_loss_truth"],
                "gain": m["gain"],
                "gain_truth": m["gain_truth"],
                "input_loss": m["input_loss"],
                "epochs": m.get("epochs", 0),
                "train_seconds": m.get("train_seconds", 0.0),
                "seconds_per_epoch": m.get("seconds_per_epoch"),
                "inference_spectra_per_s": m["inference_spectra_per_s"],
                "n_parameters": m.get("n_parameters"),
                "hyper": r.get("hyper", {}),
                "run_id": r.get("run_id"),
            }
        )
    return sorted(rows, key=lambda x: (x["family"], x["latent_dim"]))


def render_markdown(
    rows: list[dict[str, Any]], champion: dict[str, Any] | None, default: dict[str, Any] | None = None
) -> str:
    out = [
        "# Model evaluation (test set)",
        "",
        "Mean eq.-3 weighted loss per spectrum against the SDSS-like observed target and against the noise-free truth;",
        "gain = loss of the noise-added input / loss of the model.",
        "",
        "| family | dim | test loss (observed) | test loss (truth) | gain | gain (truth) | epochs | train s | s/epoch "
        "| spectra/s | hyper-parameters |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in rows:
        spe = f"{r['seconds_per_epoch']:.2f}" if r.get("seconds_per_epoch") else "-"
        hp = ", ".join(f"{k}={v}" for k, v in r["hyper"].items()) if r["hyper"] else "-"
        out.append(
            f"| {r['family']} | {r['latent_dim']} | {r['test_loss']:.1f} | {r['test_loss_truth']:.1f} "
            f"| {r['gain']:.1f} | {r['gain_truth']:.1f} | {r['epochs']} | {r['train_seconds']:.1f} | {spe} "
            f"| {r['inference_spectra_per_s']:.0f} | {hp} |"
        )
    if rows:
        out += ["", f"Noise-added input: loss {rows[0]['input_loss']:.1f} against the observed target."]
    neural = [r for r in rows if r["family"] in PAPER_HYPER and r["hyper"].get("units")]
    if neural:
        out += ["", "## Chosen hyper-parameters next to the paper's Tables 4 (AE) and 5 (VAE)", ""]
        out += ["| family | dim | dropout | units | paper dropout | paper units |", "|---|---:|---:|---|---:|---|"]
        for r in neural:
            pd_, pu = PAPER_HYPER[r["family"]].get(r["latent_dim"], (None, None))
            out.append(
                f"| {r['family']} | {r['latent_dim']} | {r['hyper']['dropout']} | {r['hyper']['units']} | "
                f"{pd_ if pd_ is not None else '-'} | {pu if pu else '-'} |"
            )
    if champion:
        out += [
            "",
            f"Champion: `models:/{champion['model']}@champion` = version {champion['version']} "
            f"(run {champion['run_id']}, test loss {champion['test_loss']:.1f}).",
        ]
    if default:
        out += [
            "",
            f"Users' default: `models:/{default['model']}@champion` = version {default['version']} "
            f"(run {default['run_id']}, test loss {default['test_loss']:.1f}); `specdenoise denoise` uses it.",
        ]
    return "\n".join(out) + "\n"


def run(
    params: Params,
    models_dir: Path,
    spectra: Path,
    noisy: Path,
    sample: Path,
    out: Path,
    out_md: Path,
    figures_dir: Path,
    tracking: bool = True,
    noise_report: Path | None = None,
    metrics_out: Path | None = None,
) -> str:
    """The ``evaluate`` stage; returns the Markdown table (also written to ``out_md``).

    Writes ``out`` (per paper model: metrics, the rows; per seed-pooled cell of every noise
    level: mean and seed sd, tie-group rank with the paired-bootstrap CI; per-class losses; the
    registry champion), ``metrics_out`` (the compact DVC metrics, :func:`headline.metrics_json`),
    ``loss_vs_dim.csv`` / ``loss_vs_level.csv`` beside ``out`` (DVC plots), ``out_md`` and the
    figures; with ``tracking`` gives the best registered version among the runs of the models in
    ``models_dir`` the ``champion`` alias (of the paper's and of the default model) and logs
    the figures to an ``evaluate`` run. ``noise_report`` (the noise stage's S/N per level) adds
    the input S/N.
    """
    records = collect(models_dir)
    rows = summary_table(records)
    ec = params.evaluate
    try:
        cells = rankings.build_cells(store.list_models(models_dir), params.noise.sigma)
    except ValueError as exc:
        raise DataError(str(exc)) from None
    ranks = rankings.rank_all(cells, ec.n_bootstrap, ec.seed, ec.sd_factor)
    pre = Spectra.load(spectra).require("truth", "split", source=str(spectra))
    samp = load_sample(sample, CLASS_COLUMNS)
    classes = rankings.per_class(cells, samp["class"].astype(str).to_numpy())
    snr = load_json(noise_report) if noise_report is not None and Path(noise_report).exists() else None
    paths = figures(records, models_dir, pre, load_noisy(noisy), samp, params, figures_dir, cells)
    champion = default = None
    if tracking:
        trained = {r.get("run_id") for r in records} - {None}  # the paper models: the registered ones
        champion = set_champion(params.tracking, run_ids=trained)
        default = set_champion(params.tracking, registered_model=params.tracking.default_model, run_ids=trained)
        run_params = {"champion_version": champion["version"], "champion_run": champion["run_id"]} if champion else None
        if default:
            run_params = {**(run_params or {}), "default_version": default["version"], "default_run": default["run_id"]}
        log_stage_run(params, "evaluate", run_params=run_params, artifacts=paths)
    keys = ("test_loss", "test_loss_truth", "gain", "gain_truth")
    metrics = {store.key(r["family"], r["latent_dim"]): {k: r[k] for k in keys} for r in rows}
    save_json(
        out,
        {
            "models": metrics,
            "champion": champion,
            "default_champion": default,
            "rows": rows,
            "paper_level": params.noise.sigma,
            "cells": [rankings.public(c) for c in cells],
            "rankings": ranks,
            "per_class": classes,
            "noise_levels": (snr or {}).get("levels", {}),
        },
    )
    by_dim, by_level = headline.plot_tables(cells, params.noise.sigma)
    save_text(out.with_name("loss_vs_dim.csv"), by_dim)
    save_text(out.with_name("loss_vs_level.csv"), by_level)
    if metrics_out is not None:
        save_json(metrics_out, headline.metrics_json(cells, params.noise.sigma, snr))
    text = render_markdown(rows, champion, default) + "\n".join(headline.markdown(cells, ranks, classes, snr)) + "\n"
    save_text(out_md, text)
    return text
