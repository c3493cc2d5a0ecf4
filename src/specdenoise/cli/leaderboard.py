"""``specdenoise leaderboard``: every result in one table (DVC stage ``leaderboard``)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from specdenoise.evaluation import leaderboard
from specdenoise.io import save_text


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
