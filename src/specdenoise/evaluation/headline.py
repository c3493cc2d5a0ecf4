"""The compact outputs of the evaluate stage: ``reports/metrics.json`` (the only DVC metrics file:
headline numbers that fit ``dvc metrics show`` / ``dvc exp show`` in a terminal), the DVC plot
tables ``loss_vs_dim.csv`` / ``loss_vs_level.csv`` (one column per family, seed sd beside it) and
the Markdown tables of the seed-pooled cells, the tie-group ranks and the per-class losses."""

from __future__ import annotations

from typing import Any

from specdenoise.data.artefacts import level_name


def _sig(v: float | None, digits: int = 4) -> float | None:
    return None if v is None else float(f"{v:.{digits}g}")


def level_key(level: float) -> str:
    """A level as a short metrics key without dots (dots would split DVC's flattened column names):
    0.04 -> ``s0_04``."""
    return "s" + level_name(level).replace(".", "_")


def metrics_json(cells: list[dict[str, Any]], paper_sigma: float, snr: dict[str, Any] | None = None) -> dict[str, Any]:
    """Headline numbers, flat and with short keys so that ``dvc metrics show`` stays one short table:
    per noise level ``s<level>`` the loss mean of every cell (``<family>_<dim>``) and its seed sd
    (``<family>_<dim>_sd``, where there are seeds); ``snr.s<level>`` the input continuum S/N; the
    champion (rank-1 cell at the paper level, ``champion_ties``: cells sharing its rank). The line
    slopes are the lines stage's own metric (``reports/line_metrics.json``)."""
    out: dict[str, Any] = {}
    paper = sorted((c for c in cells if c["level"] == paper_sigma), key=lambda c: c["test_loss"])
    if paper:
        best = paper[0]
        out["champion"] = best["key"]
        out["champion_loss"] = _sig(best["test_loss"])
        out["champion_ties"] = sum(c.get("rank") == best.get("rank") for c in paper) - 1
    for c in sorted(cells, key=lambda c: (c["level"], c["key"])):
        level = out.setdefault(level_key(c["level"]), {})
        level[c["key"]] = _sig(c["test_loss"])
        if c["test_loss_sd"] is not None:
            level[f"{c['key']}_sd"] = _sig(c["test_loss_sd"], 3)
    levels = (snr or {}).get("levels") or {}
    if levels:
        out["snr"] = {level_key(float(name)): _sig(v["snr_median"], 3) for name, v in levels.items()}
    return out


def plot_tables(cells: list[dict[str, Any]], paper_sigma: float) -> tuple[str, str]:
    """CSV of loss vs latent dimension (paper level) and vs noise level, one ``<family>`` column
    (``<family>_<dim>`` for the level table) and its ``_sd`` column; empty cells where not trained."""

    def table(rows: list[dict[str, Any]], x_key: str, col: str) -> str:
        cols = sorted({c[col] for c in rows})
        xs = sorted({c[x_key] for c in rows})
        lines = [",".join([x_key, *[f"{k},{k}_sd" for k in cols]])]
        for x in xs:
            vals = []
            for k in cols:
                hit = [c for c in rows if c[x_key] == x and c[col] == k]
                sd = hit[0]["test_loss_sd"] if hit else None
                vals += [f"{hit[0]['test_loss']:.6g}" if hit else "", f"{sd:.4g}" if sd is not None else ""]
            lines.append(",".join([f"{x:g}", *vals]))
        return "\n".join(lines) + "\n"

    by_dim = table([c for c in cells if c["level"] == paper_sigma], "latent_dim", "family")
    multi = {c["key"] for c in cells if c["level"] != paper_sigma}
    by_level = table([c for c in cells if c["key"] in multi], "level", "key")
    return by_dim, by_level


def _pm(mean: float, sd: float | None) -> str:
    return f"{mean:,.1f} +- {sd:,.1f}" if sd is not None else f"{mean:,.1f}"


def markdown(
    cells: list[dict[str, Any]], rankings: dict[str, list[str]], classes: dict[str, Any], snr: dict[str, Any] | None
) -> list[str]:
    """Markdown sections: input S/N per level, the ranked cells of every level, the per-class table."""
    out: list[str] = []
    levels = (snr or {}).get("levels") or {}
    if levels:
        out += ["", "## Noise levels", "", "| sigma | continuum S/N per pixel (median, 16-84 %) |", "|---:|---|"]
        for name, v in sorted(levels.items(), key=lambda kv: float(kv[0])):
            out.append(f"| {name} | {v['snr_median']:.2f} ({v['snr_p16']:.2f}-{v['snr_p84']:.2f}) |")
    by_key = {(level_name(c["level"]), c["key"]): c for c in cells}
    for level, keys in sorted(rankings.items(), key=lambda kv: float(kv[0])):
        out += [
            "",
            f"## Ranking at sigma = {level}",
            "",
            "Tie groups: a model shares the rank of the group leader above it unless the paired-bootstrap 95 % CI "
            "of the loss gap excludes 0 and the gap exceeds evaluate.sd_factor x the seed sd; gap: to the group "
            "leader (for a leader: to the previous leader).",
            "",
            "| rank | model | seeds | test loss (observed) | test loss (truth) | gap [95 % CI] | seed sd used |",
            "|---:|---|---:|---:|---:|---|---|",
        ]
        for k in keys:
            c = by_key[(level, k)]
            rank = f"{c['rank']}=" if c["tied"] else str(c["rank"])
            lo, hi = c["ci_vs_leader"]
            sd = "-" if c["sd_used"] is None else f"{c['sd_used']:.1f} ({c['sd_source']})"
            out.append(
                f"| {rank} | {c['family'].upper()} {c['latent_dim']}-D | {c['n_seeds']} "
                f"| {_pm(c['test_loss'], c['test_loss_sd'])} | {_pm(c['test_loss_truth'], c['test_loss_truth_sd'])} "
                f"| {c['diff_vs_leader']:+,.1f} [{lo:+,.1f}, {hi:+,.1f}] | {sd} |"
            )
    for level, table in sorted(classes.items(), key=lambda kv: float(kv[0])):
        names = list(table["n"])
        out += [
            "",
            f"## Test loss (observed) per galaxy class at sigma = {level}",
            "",
            "| model | " + " | ".join(f"{n} ({table['n'][n]})" for n in names) + " |",
            "|---|" + "---:|" * len(names),
        ]
        for k, row in table.items():
            if k != "n":
                out.append(f"| {k} | " + " | ".join(f"{row[n]:,.1f}" for n in names) + " |")
    return out
