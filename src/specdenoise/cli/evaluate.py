"""``specdenoise evaluate / uncertainty / lines``: the evaluation stages that score the trained models."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer

from specdenoise.cli.common import (
    NOISY,
    SAMPLE,
    SPECTRA,
    TEMPLATES,
    ModelsDirOpt,
    NoisyOpt,
    ParamsOpt,
    SampleOpt,
    SpectraOpt,
    TemplatesOpt,
    done,
    progress,
)
from specdenoise.config import resolve_params
from specdenoise.evaluation import evaluate, lines, recovery_tables, uncertainty
from specdenoise.io import load_json, save_json

TrackingOpt = Annotated[
    bool, typer.Option("--tracking/--no-tracking", help="Log to MLflow (and promote the champion).")
]


def evaluate_cmd(
    params_path: ParamsOpt = None,
    models_dir: ModelsDirOpt = Path("models"),
    spectra: SpectraOpt = SPECTRA,
    noisy: NoisyOpt = NOISY,
    sample: SampleOpt = SAMPLE,
    out: Annotated[Path, typer.Option(help="Evaluation metrics (JSON).")] = Path("reports/evaluation.json"),
    out_md: Annotated[Path, typer.Option(help="Evaluation table (Markdown).")] = Path("reports/evaluation.md"),
    figures_dir: Annotated[Path, typer.Option(help="Where figures go.")] = Path("reports/figures/models"),
    tracking: TrackingOpt = True,
    noise_report: Annotated[
        Path | None, typer.Option(help="The noise stage's S/N per level (JSON), shown next to the levels.")
    ] = None,
    metrics: Annotated[
        Path | None, typer.Option(help="Compact headline metrics (JSON) for `dvc metrics show`.")
    ] = None,
) -> None:
    """Rank every trained model (seeds pooled, paired-bootstrap CIs, every noise level), promote the
    registry's best version to @champion and draw the figures."""
    t0 = time.perf_counter()
    text = evaluate.run(
        resolve_params(params_path),
        models_dir,
        spectra,
        noisy,
        sample,
        out,
        out_md,
        figures_dir,
        tracking=tracking,
        noise_report=noise_report,
        metrics_out=metrics,
    )
    done("evaluate", t0)
    typer.echo(text)


def uncertainty_cmd(
    params_path: ParamsOpt = None,
    models_dir: ModelsDirOpt = Path("models"),
    spectra: SpectraOpt = SPECTRA,
    noisy: NoisyOpt = NOISY,
    calibration_dir: Annotated[Path, typer.Option(help="Where calibration/<family>_<dim>.json go.")] = Path(
        "calibration"
    ),
    out: Annotated[Path, typer.Option(help="Coverage metrics (JSON).")] = Path("reports/uncertainty.json"),
    out_md: Annotated[Path, typer.Option(help="Coverage table (Markdown).")] = Path("reports/uncertainty.md"),
    tracking: TrackingOpt = True,
) -> None:
    """Calibrate per-pixel uncertainties on the validation split; measure 1/2-sigma coverage on the test split."""
    t0 = time.perf_counter()
    text, n = uncertainty.run(
        resolve_params(params_path), models_dir, spectra, noisy, calibration_dir, out, out_md, tracking=tracking
    )
    done("uncertainty", t0, models=n)
    typer.echo(text)


def lines_cmd(
    params_path: ParamsOpt = None,
    spectra: SpectraOpt = SPECTRA,
    noisy: NoisyOpt = NOISY,
    sample: SampleOpt = SAMPLE,
    models_dir: ModelsDirOpt = Path("models"),
    templates: TemplatesOpt = TEMPLATES,
    out: Annotated[Path, typer.Option(help="Line metrics (JSON).")] = Path("reports/lines.json"),
    table: Annotated[Path, typer.Option(help="Table 6 (Markdown).")] = Path("reports/table6.md"),
    figures_dir: Annotated[Path, typer.Option(help="Where Fig. 9 goes.")] = Path("reports/figures/lines"),
    metrics_out: Annotated[
        Path, typer.Option(help="Compact line metrics (JSON): H-alpha slope and gain, O3N2 slope per level and set.")
    ] = Path("reports/line_metrics.json"),
    levels_dir: Annotated[
        Path | None, typer.Option(help="Folder of the other noise levels (sigma_<level>.npz): recovery per level.")
    ] = None,
    tracking: TrackingOpt = True,
) -> None:
    """Measure emission lines on the test set for every model; sigma, sigma_fill, CRB; Table 6 and Fig. 9;
    recovery slopes, information gain and coverage (reports/lines.json "recovery", reports/line_metrics.json)."""
    t0 = time.perf_counter()
    text, rate = lines.run(
        resolve_params(params_path),
        spectra,
        noisy,
        sample,
        models_dir,
        templates,
        out,
        table,
        figures_dir,
        tracking=tracking,
        progress=progress(),
        levels_dir=levels_dir,
    )
    rec = load_json(out)
    save_json(metrics_out, recovery_tables.line_metrics_by_level(rec, resolve_params(params_path).noise.sigma))
    done("lines", t0, fit_per_s=f"{rate:.0f}")
    typer.echo(text)
