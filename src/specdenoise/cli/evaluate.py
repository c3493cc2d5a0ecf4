"""``specdenoise evaluate / uncertainty / templates / lines / leaderboard``: the evaluation stages."""

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
    params,
    progress,
)
from specdenoise.evaluation import evaluate, leaderboard, lines, uncertainty
from specdenoise.io import save_text
from specdenoise.physics.templates import build_emiles

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
) -> None:
    """Compare every trained model, promote the registry's best version to @champion and draw the figures."""
    t0 = time.perf_counter()
    text = evaluate.run(
        params(params_path), models_dir, spectra, noisy, sample, out, out_md, figures_dir, tracking=tracking
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
        params(params_path), models_dir, spectra, noisy, calibration_dir, out, out_md, tracking=tracking
    )
    done("uncertainty", t0, models=n)
    typer.echo(text)


def templates_cmd(
    out: Annotated[Path, typer.Option(help="Template file (ppxf sps_util .npz layout).")] = TEMPLATES,
) -> None:
    """Build the E-MILES template library from the ppxf 8.2.6 source distribution (once)."""
    prov = build_emiles(out)
    typer.echo(f"templates: {prov['n_spectra']} E-MILES SSPs ({prov['source']}, sha256 {prov['sha256'][:12]}) -> {out}")


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
    tracking: TrackingOpt = True,
) -> None:
    """Measure emission lines on the test set for every model; sigma, sigma_fill, CRB; Table 6 and Fig. 9."""
    t0 = time.perf_counter()
    text, rate = lines.run(
        params(params_path),
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
    )
    done("lines", t0, fit_per_s=f"{rate:.0f}")
    typer.echo(text)


def leaderboard_cmd(
    evaluation: Annotated[Path, typer.Option(help="Evaluation metrics from `specdenoise evaluate`.")] = Path(
        "reports/evaluation.json"
    ),
    lines_path: Annotated[Path, typer.Option("--lines", help="Per-line metrics, when the line stage has run.")] = Path(
        "reports/lines.json"
    ),
    bench_dir: Annotated[Path, typer.Option(help="Folder with bench_*.json for the footer.")] = Path("reports"),
    uncertainty_path: Annotated[
        Path, typer.Option("--uncertainty", help="Coverage metrics, when the uncertainty stage has run.")
    ] = Path("reports/uncertainty.json"),
    mzr: Annotated[Path, typer.Option(help="Mass-metallicity metrics, when the mzr stage has run.")] = Path(
        "reports/mzr.json"
    ),
    out_md: Annotated[Path, typer.Option(help="Markdown leaderboard to write.")] = Path("reports/leaderboard.md"),
    out_html: Annotated[Path, typer.Option(help="Standalone HTML leaderboard to write.")] = Path(
        "reports/leaderboard.html"
    ),
) -> None:
    """Print the leaderboard (one row per family x dimension) and write it as Markdown and HTML."""
    board = leaderboard.build(evaluation, lines_path, bench_dir, uncertainty_path, mzr)
    text = leaderboard.render_markdown(board)
    save_text(out_md, text)
    save_text(out_html, leaderboard.render_html(board))
    typer.echo(text)
