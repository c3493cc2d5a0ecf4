"""``specdenoise leaderboard``: every result in one table (DVC stage ``leaderboard``)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from specdenoise.evaluation import leaderboard, leaderboard_html
from specdenoise.io import save_text


def leaderboard_cmd(
    evaluation: Annotated[Path, typer.Option(help="Evaluation metrics from `specdenoise evaluate`.")] = Path(
        "reports/evaluation.json"
    ),
    lines_path: Annotated[Path, typer.Option("--lines", help="Per-line metrics, when the line stage has run.")] = Path(
        "reports/lines.json"
    ),
    figures_dir: Annotated[
        Path, typer.Option(help="The evaluate stage's figures (loss_vs_dim.svg, loss_vs_level.svg are embedded).")
    ] = Path("reports/figures/models"),
    mlflow_ui: Annotated[str, typer.Option(help="Base URL of the MLflow UI the run links point to.")] = (
        leaderboard.DEFAULT_UI
    ),
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
    """Print the leaderboard (per noise level, one row per family x dimension, seeds pooled) and write it
    as Markdown and as a self-contained, sortable HTML page."""
    board = leaderboard.build(evaluation, lines_path, uncertainty_path, mzr, figures_dir, mlflow_ui)
    text = leaderboard.render_markdown(board)
    save_text(out_md, text)
    save_text(out_html, leaderboard_html.render(board))
    typer.echo(text)
