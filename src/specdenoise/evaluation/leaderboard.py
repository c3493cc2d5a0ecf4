"""The leaderboard: one row per model family x latent dimension, from recorded metrics only.

Numbers come from ``reports/evaluation.json`` (written by the evaluate stage from each model's
``metrics.json`` / MLflow run), optional per-line metrics (``reports/lines.json``, once the
line stage exists) and optional benchmark files (``reports/bench_*.json``, the footer).
Nothing is re-typed.
"""

from __future__ import annotations

import html
import json
from pathlib import Path
from typing import Any

from specdenoise.errors import DataError

COLUMNS = [
    ("rank", "rank"),
    ("model", "model"),
    ("test_loss", "test loss (observed)"),
    ("test_loss_truth", "test loss (truth)"),
    ("gain", "gain over input"),
    ("gain_truth", "gain (truth)"),
    ("train_seconds", "train s"),
    ("inference_spectra_per_s", "spectra/s"),
    ("coverage_1sigma", "1-sigma coverage %"),
    ("coverage_2sigma", "2-sigma coverage %"),
    ("run_id", "MLflow run"),
]


def _read(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise DataError(f"{path}: file not found (run `dvc repro evaluate` first)") from None
    except json.JSONDecodeError as exc:
        raise DataError(f"{path}: not valid JSON ({exc.msg})") from None


def build(
    evaluation: Path,
    lines: Path | None = None,
    bench_dir: Path | None = None,
    uncertainty: Path | None = None,
    mzr: Path | None = None,
) -> dict[str, Any]:
    """Rows sorted by test loss against the observed target, champion marked, plus footer facts.

    ``uncertainty`` (``reports/uncertainty.json``, when present) adds the test-set fraction of
    true pixels within the calibrated 1 and 2 sigma (percent). ``mzr`` (``reports/mzr.json``,
    when present) adds the mass-metallicity table of the DESI-like test.
    """
    ev = _read(evaluation)
    unc = _read(uncertainty).get("models", {}) if uncertainty is not None and Path(uncertainty).exists() else {}
    champ = ev.get("champion") or {}
    line_metrics = _read(lines) if lines is not None and lines.exists() else {}
    rows = []
    for r in sorted(ev["rows"], key=lambda r: r["test_loss"]):
        row = {k: r.get(k) for k, _ in COLUMNS if k not in ("rank", "model")}
        row["model"] = f"{r['family'].upper()} {r['latent_dim']}-D"
        row["family"], row["latent_dim"] = r["family"], r["latent_dim"]
        row["champion"] = bool(champ) and r.get("run_id") == champ.get("run_id")
        key = f"{r['family']}_{r['latent_dim']}"
        row["lines"] = line_metrics.get("models", {}).get(key, {})
        after = (unc.get(key) or {}).get("after") or {}
        for k in ("within_1sigma", "within_2sigma"):
            if after.get(k) is not None:
                row[f"coverage_{k[7:]}"] = round(100 * after[k], 1)
        rows.append(row)
    for i, row in enumerate(rows, 1):
        row["rank"] = i
    for key, label in (("noisy", "noise-added input"), ("crb", "Cramer-Rao bound")):
        if key in line_metrics.get("models", {}):
            rows.append(
                {
                    "rank": None,
                    "model": label,
                    "champion": False,
                    "lines": line_metrics["models"][key],
                    "test_loss": ev["rows"][0].get("input_loss") if key == "noisy" and ev["rows"] else None,
                }
            )
    footer: dict[str, Any] = {}
    if bench_dir is not None:
        for path in sorted(Path(bench_dir).glob("bench_*.json")):
            footer[path.stem] = _read(path)
    mz = _read(mzr) if mzr is not None and Path(mzr).exists() else {}
    mzr_rows = [
        {"set": k, **{m: v.get(m) for m in ("fraction_measurable", "scatter", "median_error", "sfr_rho")}}
        for k, v in sorted(
            mz.get("sets", {}).items(), key=lambda kv: MZR_ORDER.index(kv[0]) if kv[0] in MZR_ORDER else 99
        )
    ]
    return {
        "rows": rows,
        "champion": champ,
        "line_names": line_metrics.get("lines", []),
        "footer": footer,
        "input_loss": ev["rows"][0].get("input_loss") if ev["rows"] else None,
        "mzr": {"rows": mzr_rows, "model_uri": mz.get("model_uri"), "truth": mz.get("truth", {})},
    }


MZR_ORDER = ["original", "desi", "denoised", "denoised_calibrated"]
MZR_HEADS = ["spectra", "measurable %", "MZR scatter (dex)", "median error (dex)", "SFR rho"]


def _mzr_cells(row: dict[str, Any]) -> list[str]:
    frac = row.get("fraction_measurable")
    return [
        row["set"],
        _fmt(None if frac is None else round(100 * frac, 1)),
        _fmt(row.get("scatter")),
        _fmt(row.get("median_error")),
        _fmt(row.get("sfr_rho")),
    ]


def _mzr_title(board: dict[str, Any]) -> str:
    t = board["mzr"].get("truth") or {}
    truth = f"; truth: scatter {t['scatter']:.3f}, SFR rho {t['sfr_rho']:+.2f}" if t.get("scatter") is not None else ""
    return (
        f"Mass-metallicity test (DESI-like, `{board['mzr']['model_uri']}`; "
        f"paper: 0.09 original / poor DESI-like / 0.12 de-noised{truth})"
    )


def _fmt(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.4g}" if abs(v) < 1e4 else f"{v:,.0f}"
    return str(v)


def _cells(row: dict[str, Any], line_names: list[str]) -> list[str]:
    cells = []
    for k, _ in COLUMNS:
        v = row.get(k)
        if k == "model" and row["champion"]:
            v = f"{v} (champion)"
        if k == "run_id" and v:
            v = v[:8]
        cells.append(_fmt(v))
    for name in line_names:
        cells.append(_fmt(row["lines"].get(f"sigma_fill_{name}")))
    return cells


def render_markdown(board: dict[str, Any]) -> str:
    heads = [h for _, h in COLUMNS] + [f"sigma_fill {n}" for n in board["line_names"]]
    out = [
        "# specdenoise leaderboard",
        "",
        "Sorted by mean test loss (eq. 3) against the SDSS-like observed target.",
        "",
    ]
    out += _md_table(heads, [_cells(row, board["line_names"]) for row in board["rows"]])
    if board["input_loss"] is not None:
        out += ["", f"Noise-added input: test loss {board['input_loss']:,.0f}."]
    if board["champion"]:
        c = board["champion"]
        out.append(f"Champion: `models:/{c['model']}@champion` (version {c['version']}).")
    if any(r.get("coverage_1sigma") is not None for r in board["rows"]):
        out.append(
            "Coverage: % of true test pixels within the calibrated 1 / 2 sigma "
            "(ideal 68.3 / 95.4; `reports/uncertainty.md`)."
        )
    if not board["line_names"]:
        out.append("Line metrics (sigma, sigma_fill, CRB) appear once the emission-line stage runs.")
    else:
        out.append(
            "sigma_fill: scatter (dex) of log line flux against the fit to the observed target over filled bins "
            "(paper Table 6). "
            "The Cramer-Rao row is an unbiased single-line measurement at the input noise with no prior; "
            "de-noisers use the "
            "population prior and can beat it."
        )
    if board.get("mzr", {}).get("rows"):
        out += ["", "## " + _mzr_title(board), "", *_md_table(MZR_HEADS, [_mzr_cells(r) for r in board["mzr"]["rows"]])]
    out += _footer_lines(board["footer"])
    return "\n".join(out) + "\n"


def _footer_lines(footer: dict[str, Any]) -> list[str]:
    lines: list[str] = []
    if "bench_universe" in footer:
        b = footer["bench_universe"]
        lines.append(
            f"Universe: {b['n_galaxies']:,} galaxies with spectra in {b['total_s']} s "
            f"({b['spectra_per_s_end_to_end']} spectra/s, peak {b['peak_rss_gb']} GB)."
        )
    if "bench_pipeline" in footer:
        b = footer["bench_pipeline"]
        lines.append(
            f"Preprocessing: {b['preprocess_spectra_per_s']:,} spectra/s; dense matmul {b['matmul_gflops']} GFLOP/s."
        )
        if "inference" in b:
            i = b["inference"]
            lines.append(
                f"Inference ({i['model']}): {i['spectra_per_s']:,} spectra/s = {i['gflops_achieved']} GFLOP/s, "
                f"roofline ratio {i['roofline_ratio']}."
            )
        if "lines" in b:
            ln = b["lines"]
            lines.append(
                f"Line fitting: fast {ln['fast_spectra_per_s']:,} spectra/s "
                f"vs pPXF {ln['ppxf_spectra_per_s']} spectra/s ({ln['speedup']:.0f}x)."
            )
    if "bench_denoise" in footer:
        b = footer["bench_denoise"]
        rates = ", ".join(f"{r['spectra_per_s']} spectra/s with {r['workers']} worker(s)" for r in b.get("results", []))
        lines.append(
            "`specdenoise denoise` (read, preprocess, de-noise with sigma, write FITS; "
            f"{b.get('family', '').upper()} {b.get('latent_dim')}-D) on a local Dask cluster: {rates}."
        )
    if "bench_train" in footer:
        for b in footer["bench_train"]:
            if "error" not in b:
                lines.append(
                    f"Training ({b['backend']}, {b['family'].upper()}, {b['n_parameters']:,} parameters): "
                    f"{b['seconds_per_epoch']} s/epoch on {b['n_spectra']} spectra."
                )
    return ["", "## Benchmarks", "", *[f"- {ln}" for ln in lines]] if lines else []


def _md_table(heads: list[str], rows: list[list[str]]) -> list[str]:
    """Lines of a Markdown table."""
    return [
        "| " + " | ".join(heads) + " |",
        "|" + "|".join("---" for _ in heads) + "|",
        *("| " + " | ".join(r) + " |" for r in rows),
    ]


def _html_table(heads: list[str], rows: list[list[str]], highlight: list[bool] | None = None) -> str:
    """An HTML table; rows flagged in ``highlight`` get ``class="champion"``."""
    flags = highlight or [False] * len(rows)
    cls = {True: ' class="champion"', False: ""}
    body = "".join(
        f"<tr{cls[hi]}>" + "".join(f"<td>{html.escape(c)}</td>" for c in r) + "</tr>"
        for r, hi in zip(rows, flags, strict=True)
    )
    return (
        "<table><thead><tr>"
        + "".join(f"<th>{html.escape(h)}</th>" for h in heads)
        + "</tr></thead><tbody>"
        + body
        + "</tbody></table>"
    )


def render_html(board: dict[str, Any]) -> str:
    """A standalone HTML page (no external assets)."""
    heads = [h for _, h in COLUMNS] + [f"sigma_fill {n}" for n in board["line_names"]]
    main = _html_table(
        heads, [_cells(row, board["line_names"]) for row in board["rows"]], [row["champion"] for row in board["rows"]]
    )
    foot = "".join(f"<li>{html.escape(x[2:])}</li>" for x in _footer_lines(board["footer"]) if x.startswith("- "))
    mzr_html = ""
    if board.get("mzr", {}).get("rows"):
        mzr_html = f"<h2>{html.escape(_mzr_title(board))}</h2>" + _html_table(
            MZR_HEADS, [_mzr_cells(r) for r in board["mzr"]["rows"]]
        )
    return (
        "<!doctype html><html><head><meta charset='utf-8'><title>specdenoise leaderboard</title>"
        "<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}"
        "td,th{border:1px solid #ccc;padding:4px 8px;text-align:right}tr.champion{background:#fff3c4}"
        "</style></head><body>"
        "<h1>specdenoise leaderboard</h1><p>Sorted by mean test loss (eq. 3) against the SDSS-like observed target.</p>"
        + main
        + mzr_html
        + (f"<h2>Benchmarks</h2><ul>{foot}</ul>" if foot else "")
        + "</body></html>\n"
    )
