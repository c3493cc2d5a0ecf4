"""What the de-noisers recover, as tables: the leaderboard's recovery section and the compact
``reports/line_metrics.json`` (a DVC metric), both built from ``reports/lines.json["recovery"]``
(schema: :mod:`specdenoise.evaluation.line_recovery`).

Every number answers "does the de-noised quantity follow the galaxy, or the training
population?": the slope of log recovered on log true (1 follows the galaxy, 0 returns the
population), the same against the fast fit to the noise-free spectrum (the fitter's own error
removed), the information gain over the prior-only ``mean`` model (1 - MSE / MSE(prior only)),
the median bias in the faint and bright thirds, and the 16-84 % coverage of each model's stated
line-flux interval per input S/N bin.
"""

from __future__ import annotations

from typing import Any

#: The lines shown (the O3N2 lines and [NII]); labels for the tables.
LINES = {"Halpha": "H-alpha", "Hbeta": "H-beta", "OIII_5007": "[OIII]5007", "NII_6583": "[NII]6583"}
INDICES = {"d4000n": "D4000n", "hdelta_a": "HdeltaA", "ew_halpha": "EW(H-alpha)"}
SET_LABELS = {"noisy": "noise-added input", "observed": "observed target"}
TITLES = (
    "Slope of log recovered on log true line flux (1: follows the galaxy; 0: the population)",
    "Information gain over the prior-only model (vs the noise-free fit) and tertile bias vs truth",
    "Coverage of the stated 16-84 % interval (target 68 %) per input line S/N",
    "Slopes of continuum indices and metallicity (1: follows the galaxy)",
)


def _num(v: Any, spec: str = "{:.2f}") -> str:
    return "-" if v is None or v != v else spec.format(v)


def _sets(rec: dict[str, Any]) -> list[str]:
    """Rows: the input first, the prior-only model next, then the trained models by name."""
    names = [k for k in rec.get("models", {}) if k != "observed"]
    return sorted(names, key=lambda k: (k != "noisy", not k.startswith("mean_"), k))


def _metric(rec: dict[str, Any], name: str, line: str, ref: str, key: str) -> Any:
    return ((rec["models"][name].get("lines") or {}).get(line) or {}).get(ref, {}).get(key)


def tables(rec: dict[str, Any]) -> list[tuple[str, list[str], list[list[str]]]]:
    """``(title, heads, rows)`` of the recovery tables (paper noise level, test split)."""
    if not rec or not rec.get("models"):
        return []
    names = _sets(rec)
    label = [SET_LABELS.get(n, n) for n in names]
    out = []
    heads = ["set", *[f"{lab} vs truth (vs noise-free fit)" for lab in LINES.values()]]
    rows = [
        [lab, *[f"{_num(_metric(rec, n, ln, 'vs_truth', 'slope_ols'))} "
                f"({_num(_metric(rec, n, ln, 'vs_noise_free_fit', 'slope_ols'))})" for ln in LINES]]
        for n, lab in zip(names, label, strict=True)
    ]  # fmt: skip
    out.append(("Slope of log recovered on log true line flux (1: follows the galaxy; 0: the population)", heads, rows))
    heads = [
        "set",
        *[f"{lab} gain" for lab in LINES.values()],
        *[f"{lab} bias faint/bright (dex)" for lab in LINES.values()],
    ]
    rows = []
    for n, lab in zip(names, label, strict=True):
        gains = [_num(_metric(rec, n, ln, "vs_noise_free_fit", "info_gain")) for ln in LINES]
        terts = [_metric(rec, n, ln, "vs_truth", "bias_tertiles") or [None] * 3 for ln in LINES]
        rows.append([lab, *gains, *[f"{_num(t[0], '{:+.2f}')}/{_num(t[2], '{:+.2f}')}" for t in terts]])
    out.append(
        ("Information gain over the prior-only model (vs the noise-free fit) and tertile bias vs truth", heads, rows)
    )
    edges = rec.get("snr_edges") or []
    bins = [
        f"S/N {lo}-{hi}" if hi is not None else f"S/N > {lo}" for lo, hi in zip(edges[:-1], edges[1:], strict=False)
    ]
    heads, rows = ["set", *[f"H-alpha {b}" for b in bins], *[f"O/H {b}" for b in bins]], []
    for n, lab in zip(names, label, strict=True):
        cov = rec["models"][n].get("coverage")
        if cov:
            cells = [c.get("coverage") for c in (cov.get("lines") or {}).get("Halpha", [])] + [
                c.get("coverage") for c in cov.get("oh", [])
            ]
            rows.append([lab, *[_num(100 * c if c is not None else None, "{:.0f}%") for c in cells]])
    if rows:
        out.append((TITLES[2], heads, rows))
    heads = ["set", *[f"{lab} vs noise-free" for lab in INDICES.values()], "O3N2 vs true O3N2", "true O/H coef."]
    rows = []
    for n, lab in zip(names, label, strict=True):
        ind = rec["models"][n].get("indices") or {}
        mzr = rec["models"][n].get("mzr") or {}
        o3 = (mzr.get("o3n2") or {}).get("slope_ols")
        coef = (mzr.get("oh_fit") or {}).get("oh_true")
        rows.append([lab, *[_num((ind.get(k) or {}).get("vs_noise_free", {}).get("slope_ols")) for k in INDICES],
                     _num(o3), _num(coef)])  # fmt: skip
    out.append((TITLES[3], heads, rows))
    return out


def line_metrics(rec: dict[str, Any]) -> dict[str, Any]:
    """``reports/line_metrics.json``, per set: the H-alpha slope vs truth, its information gain vs
    the noise-free fit and the O3N2 slope vs the true-flux O3N2 (rounded; every line's numbers are
    in ``reports/lines.json`` and the leaderboard). A plain output, not a DVC metric: with one
    entry per model it would widen ``dvc metrics show`` past a terminal."""
    out: dict[str, Any] = {}
    for n in _sets(rec):
        o3 = ((rec["models"][n].get("mzr") or {}).get("o3n2") or {}).get("slope_ols")
        out[n] = {
            "ha_slope": _round(_metric(rec, n, "Halpha", "vs_truth", "slope_ols")),
            "ha_gain": _round(_metric(rec, n, "Halpha", "vs_noise_free_fit", "info_gain")),
            "o3n2_slope": _round(o3),
        }
    return out


def _round(v: Any) -> float | None:
    return None if v is None or v != v else round(float(v), 3)


def line_metrics_by_level(lines_json: dict[str, Any], paper_sigma: float) -> dict[str, Any]:
    """``reports/line_metrics.json``: :func:`line_metrics` per noise level, keyed ``sigma_<level>``
    (the paper level from ``recovery``, the others from ``recovery_levels`` of ``reports/lines.json``)."""
    out = {f"sigma_{paper_sigma:g}": line_metrics(lines_json.get("recovery") or {})}
    for level, rec in sorted((lines_json.get("recovery_levels") or {}).items(), key=lambda kv: float(kv[0])):
        out[f"sigma_{level}"] = line_metrics(rec)
    return out
