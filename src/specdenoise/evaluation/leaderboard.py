"""The leaderboard: one row per model family x latent dimension at every noise level, seeds pooled,
from this run's recorded metrics only.

Numbers come from ``reports/evaluation.json`` (the evaluate stage: seed-pooled cells with their
tie-group ranks and paired-bootstrap CIs, the per-class table, the input S/N per level), and,
when present, ``reports/lines.json``, ``reports/uncertainty.json`` and ``reports/mzr.json``;
the figures (``loss_vs_dim.svg``, ``loss_vs_level.svg``) from the evaluate stage's figure folder.
Nothing is re-typed and nothing from another run is shown (the ``make bench`` timings stay in
``reports/bench_*.json``). HTML: :mod:`specdenoise.evaluation.leaderboard_html`.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from specdenoise.data.artefacts import level_name
from specdenoise.errors import DataError
from specdenoise.evaluation import recovery_tables

#: Readable names of the MZR test's spectrum sets (``reports/mzr.json`` keys).
MZR_LABELS = {
    "original": "original (SDSS-like)",
    "desi": "DESI-like input",
    "denoised": "de-noised",
    "denoised_calibrated": "de-noised, calibrated errors",
}
MZR_HEADS = ["spectra", "measurable %", "MZR scatter (dex)", "median error (dex)", "SFR rho"]
MAIN_HEADS = [
    "rank",
    "model",
    "seeds",
    "test loss (observed)",
    "gap [95 % CI]",
    "test loss (truth)",
    "gain over input",
    "train s",
    "spectra/s",
    "1-sigma cov. %",
    "2-sigma cov. %",
]
LEVEL_HEADS = ["rank", "model", "seeds", "test loss (observed)", "gap [95 % CI]", "test loss (truth)"]
DEFAULT_UI = "http://127.0.0.1:5000"


def _read(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise DataError(f"{path}: file not found (run `dvc repro evaluate` first)") from None
    except json.JSONDecodeError as exc:
        raise DataError(f"{path}: not valid JSON ({exc.msg})") from None


def _optional(path: Path | None) -> Any:
    return _read(path) if path is not None and Path(path).exists() else {}


def fmt(v: Any, kind: str = "loss") -> str:
    """One number format per kind: ``loss`` 1,234.5; ``pct`` 68.3; ``dex`` 0.123; ``rate`` 12,345;
    ``rho`` +0.12; ``snr`` 0.89. None and NaN are "-"."""
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "-"
    if isinstance(v, str):
        return v
    spec = {"loss": ",.1f", "pct": ".1f", "dex": ".3f", "rate": ",.0f", "rho": "+.2f", "snr": ".2f", "int": "d"}[kind]
    return format(v, spec)


def pm(mean: float | None, sd: float | None) -> str:
    """``mean +- sd`` (sd omitted when there is one seed)."""
    return fmt(mean) if sd is None else f"{fmt(mean)} +- {fmt(sd)}"


def run_url(ui: str, experiment_id: str | None, run_id: str | None) -> str | None:
    """The MLflow UI page of a run (``mlflow ui`` / ``make ui`` serves it)."""
    if not run_id or not experiment_id:
        return None
    return f"{ui.rstrip('/')}/#/experiments/{experiment_id}/runs/{run_id}"


def _row(c: dict[str, Any], paper: dict[str, Any], champ: dict[str, Any], ui: str) -> dict[str, Any]:
    lo, hi = c.get("ci_vs_leader", [0.0, 0.0])
    runs = [
        {
            "seed": s["seed_index"],
            "url": run_url(ui, s.get("experiment_id"), s.get("run_id")),
            "run_id": s.get("run_id"),
        }
        for s in c["seeds"]
    ]
    return {
        "key": c["key"],
        "family": c["family"],
        "latent_dim": c["latent_dim"],
        "level": c["level"],
        "rank": c.get("rank"),
        "rank_label": f"{c.get('rank')}=" if c.get("tied") else str(c.get("rank")),
        "model": f"{c['family'].upper()} {c['latent_dim']}-D",
        "n_seeds": c["n_seeds"],
        "test_loss": c["test_loss"],
        "test_loss_sd": c["test_loss_sd"],
        "test_loss_truth": c["test_loss_truth"],
        "test_loss_truth_sd": c["test_loss_truth_sd"],
        "diff": f"{c['diff_vs_leader']:+,.1f} [{lo:+,.1f}, {hi:+,.1f}]",  # the level's first row: "leader"
        "diff_value": c.get("diff_vs_leader", 0.0),
        "gain": c["input_loss"] / c["test_loss"] if c["test_loss"] else None,
        "train_seconds": paper.get("train_seconds"),
        "inference_spectra_per_s": paper.get("inference_spectra_per_s"),
        "champion": bool(champ) and any(s.get("run_id") == champ.get("run_id") for s in c["seeds"]),
        "runs": runs,
    }


def build(
    evaluation: Path,
    lines: Path | None = None,
    uncertainty: Path | None = None,
    mzr: Path | None = None,
    figures_dir: Path | None = None,
    mlflow_ui: str = DEFAULT_UI,
) -> dict[str, Any]:
    """The leaderboard's content: ranked rows per level (the paper level first), per-class losses,
    input S/N, line and coverage metrics, the MZR table and the figures (SVG text)."""
    ev = _read(evaluation)
    if "cells" not in ev:
        raise DataError(f"{evaluation}: no 'cells' (written by an older specdenoise; re-run `dvc repro evaluate`)")
    unc = _optional(uncertainty).get("models", {})
    line_metrics = _optional(lines)
    champ = ev.get("champion") or {}
    paper_level = ev["paper_level"]
    papers = {f"{r['family']}_{r['latent_dim']}": r for r in ev["rows"]}
    levels: dict[str, list[dict[str, Any]]] = {}
    for c in ev["cells"]:
        levels.setdefault(level_name(c["level"]), []).append(c)
    tables = {}
    for name, cells in levels.items():
        rows = [_row(c, papers.get(c["key"], {}) if c["level"] == paper_level else {}, champ, mlflow_ui) for c in cells]
        rows.sort(key=lambda r: (r["rank"] or 0, r["test_loss"]))
        if rows:  # only the level's best has no gap (a model equal to a later leader shows +0.0)
            rows[0]["diff"] = "leader"
        for r in rows:
            after = (unc.get(r["key"]) or {}).get("after") or {} if r["level"] == paper_level else {}
            r["coverage_1sigma"] = 100 * after["within_1sigma"] if after.get("within_1sigma") is not None else None
            r["coverage_2sigma"] = 100 * after["within_2sigma"] if after.get("within_2sigma") is not None else None
            r["lines"] = line_metrics.get("models", {}).get(r["key"], {}) if r["level"] == paper_level else {}
        tables[name] = rows
    order = sorted(tables, key=lambda k: (float(k) != paper_level, float(k)))
    figures = {}
    for name in ("loss_vs_dim", "loss_vs_level"):
        path = Path(figures_dir) / f"{name}.svg" if figures_dir is not None else None
        if path is not None and path.exists():
            figures[name] = path.read_text()
    mz = _optional(mzr)
    mzr_rows = [
        {
            "set": MZR_LABELS.get(k, k),
            **{m: v.get(m) for m in ("fraction_measurable", "scatter", "median_error", "sfr_rho")},
        }
        for k, v in sorted(
            mz.get("sets", {}).items(), key=lambda kv: list(MZR_LABELS).index(kv[0]) if kv[0] in MZR_LABELS else 99
        )
    ]
    return {
        "paper_level": level_name(paper_level),
        "levels": order,
        "tables": tables,
        "snr": ev.get("noise_levels", {}),
        "per_class": ev.get("per_class", {}),
        "champion": champ,
        "line_names": line_metrics.get("lines", []),
        "line_refs": {k: line_metrics["models"][k] for k in ("noisy", "crb") if k in line_metrics.get("models", {})},
        "input_loss": next((c["input_loss"] for c in ev["cells"] if c["level"] == paper_level), None),
        "figures": figures,
        "mzr": {"rows": mzr_rows, "model_uri": mz.get("model_uri"), "truth": mz.get("truth", {})},
        "recovery": recovery_by_level(line_metrics, level_name(paper_level), ev.get("noise_levels", {})),
    }


def recovery_by_level(lines_json: dict[str, Any], paper: str, snr: dict[str, Any]) -> list[tuple]:
    """The recovery tables of every noise level (the paper level first), each title ending with
    its level and input continuum S/N."""
    recs = [(paper, lines_json.get("recovery") or {})]
    recs += sorted((lines_json.get("recovery_levels") or {}).items(), key=lambda kv: float(kv[0]))
    out = []
    for level, rec in recs:
        s = (snr.get(level) or {}).get("snr_median")
        tag = f"sigma = {level}" + (f", input S/N {s:.2f}" if s is not None else "")
        out += [(f"{title} [{tag}]", heads, rows) for title, heads, rows in recovery_tables.tables(rec)]
    return out


def main_cells(row: dict[str, Any], line_names: list[str]) -> list[str]:
    """The paper-level table's cells of one row (text)."""
    model = row["model"] + (" (registry champion)" if row["champion"] else "")
    cells = [
        row["rank_label"],
        model,
        fmt(row["n_seeds"], "int"),
        pm(row["test_loss"], row["test_loss_sd"]),
        row["diff"],
        pm(row["test_loss_truth"], row["test_loss_truth_sd"]),
        fmt(row["gain"], "snr"),
        fmt(row["train_seconds"], "rate"),
        fmt(row["inference_spectra_per_s"], "rate"),
        fmt(row["coverage_1sigma"], "pct"),
        fmt(row["coverage_2sigma"], "pct"),
    ]
    return cells + [fmt(row["lines"].get(f"sigma_fill_{n}"), "dex") for n in line_names]


REF_LABELS = {"noisy": "noise-added input", "crb": "Cramer-Rao bound"}


def ref_cells(board: dict[str, Any]) -> list[list[str]]:
    """Reference rows of the paper-level table (line metrics of the noisy input and the Cramer-Rao bound)."""
    rows = []
    for key, lm in board["line_refs"].items():
        loss = fmt(board["input_loss"]) if key == "noisy" else "-"
        cells = ["", REF_LABELS[key], "", loss, "", "", "", "", "", "", ""]
        rows.append(cells + [fmt(lm.get(f"sigma_fill_{n}"), "dex") for n in board["line_names"]])
    return rows


def level_cells(row: dict[str, Any]) -> list[str]:
    return [
        row["rank_label"],
        row["model"],
        fmt(row["n_seeds"], "int"),
        pm(row["test_loss"], row["test_loss_sd"]),
        row["diff"],
        pm(row["test_loss_truth"], row["test_loss_truth_sd"]),
    ]


def mzr_cells(row: dict[str, Any]) -> list[str]:
    frac = row.get("fraction_measurable")
    return [
        row["set"],
        fmt(None if frac is None else 100 * frac, "pct"),
        fmt(row.get("scatter"), "dex"),
        fmt(row.get("median_error"), "dex"),
        fmt(row.get("sfr_rho"), "rho"),
    ]


def class_table(board: dict[str, Any], level: str) -> tuple[list[str], list[list[str]]]:
    """Heads and rows of the per-class loss table at one level (models in rank order)."""
    table = board["per_class"].get(level) or {}
    if not table:
        return [], []
    names = list(table["n"])
    heads = ["model", *[f"{n} ({table['n'][n]})" for n in names]]
    rows = [
        [r["model"], *[fmt(table[r["key"]][n]) for n in names]] for r in board["tables"][level] if r["key"] in table
    ]
    return heads, rows


def level_title(board: dict[str, Any], level: str) -> str:
    snr = (board["snr"].get(level) or {}).get("snr_median")
    paper = " (the paper's level)" if level == board["paper_level"] else ""
    return f"Noise sigma = {level}{paper}: input continuum S/N {fmt(snr, 'snr')} per pixel"


def mzr_title(board: dict[str, Any]) -> str:
    t = board["mzr"].get("truth") or {}
    truth = (
        f"; truth: scatter {fmt(t['scatter'], 'dex')}, SFR rho {fmt(t['sfr_rho'], 'rho')}"
        if t.get("scatter") is not None
        else ""
    )
    return (
        f"Mass-metallicity test (DESI-like, {board['mzr']['model_uri']}; paper: 0.09 original / 0.12 de-noised{truth})"
    )


NOTES = [
    "Cells pool the training seeds: mean +- sd over seeds (no sd: one seed). Rank: tie groups (`2=`); a model "
    "starts a new group only when the paired-bootstrap 95 % CI of its loss gap to the group leader "
    "(same test spectra) excludes 0 AND the gap exceeds 2 x the seed sd. Gap: to the group leader; for a "
    "leader, to the previous leader.",
    "Loss: mean eq.-3 weighted loss per test spectrum against the SDSS-like observed target (truth: the noise-free "
    "spectrum); gain = loss of the noise-added input / loss of the model.",
    "Coverage: % of true test pixels within the calibrated 1 / 2 sigma (ideal 68.3 / 95.4).",
]


def _md_table(heads: list[str], rows: list[list[str]]) -> list[str]:
    return [
        "| " + " | ".join(heads) + " |",
        "|" + "|".join("---" for _ in heads) + "|",
        *("| " + " | ".join(r) + " |" for r in rows),
    ]


def render_markdown(board: dict[str, Any]) -> str:
    """The leaderboard as Markdown (paper level first, then the other levels, per-class, MZR)."""
    out = ["# specdenoise leaderboard", "", *NOTES, ""]
    for level in board["levels"]:
        out += ["", f"## {level_title(board, level)}", ""]
        if level == board["paper_level"]:
            heads = MAIN_HEADS + [f"sigma_fill {n} (dex)" for n in board["line_names"]]
            rows = [main_cells(r, board["line_names"]) for r in board["tables"][level]] + ref_cells(board)
            out += _md_table(heads, rows)
        else:
            out += _md_table(LEVEL_HEADS, [level_cells(r) for r in board["tables"][level]])
        heads, rows = class_table(board, level)
        if rows:
            out += [
                "",
                f"Test loss (observed) per galaxy class (spectra), sigma = {level}:",
                "",
                *_md_table(heads, rows),
            ]
    if board["input_loss"] is not None:
        out += ["", f"Noise-added input at sigma = {board['paper_level']}: test loss {fmt(board['input_loss'])}."]
    if board["champion"]:
        c = board["champion"]
        out.append(f"Registry champion: `models:/{c['model']}@champion` (version {c['version']}).")
    if board["recovery"]:
        out += ["", "## What the de-noisers recover (test split, every noise level)", ""]
        for title, heads, rows in board["recovery"]:
            out += ["", f"{title}:", "", *_md_table(heads, rows)]
    if board["mzr"]["rows"]:
        out += ["", "## " + mzr_title(board), "", *_md_table(MZR_HEADS, [mzr_cells(r) for r in board["mzr"]["rows"]])]
    return "\n".join(out) + "\n"
