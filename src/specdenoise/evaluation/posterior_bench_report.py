"""Markdown summary of ``specdenoise bench posterior`` (:func:`.posterior_bench.run_bench`'s result).

Besides the coverage, the tables say *how* an interval misses: a truth below the 16-84 % interval
of the draws means the estimate sits above the galaxy (pulled up to the population), above it the
reverse; coverage per tertile of the true flux falls at both ends when intervals follow the
training population instead of the galaxy (on spectra drawn from the model's own prior, where the
posterior is exact, every tertile holds ~0.68).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from specdenoise.evaluation.posterior_bench import SLOPE_LINES


def _tertiles(ha: dict) -> str:
    t = ha.get("coverage_tertiles")
    return " / ".join(_f(v, "{:.2f}") for v in t) if t else "-"


def _sides(entry: dict) -> str:
    return f"{_f(entry.get('below'), '{:.2f}')} / {_f(entry.get('above'), '{:.2f}')}"


def _prior_check_table(pc: dict | None) -> list[str]:
    """Markdown rows of :func:`.posterior_bench.prior_check`."""
    if not pc:
        return []
    out = [
        "",
        f"## Spectra drawn from the model's own prior ({pc['n']}, {pc['noise']} noise): the posterior is exact",
        "",
    ]
    out += [
        "| S/N | pixel cov. raw (calibrated) | Ha cov. | Hb cov. | [OIII] cov. | [NII] cov. | O3N2 cov. "
        "| Ha cov. per true-flux tertile (low / mid / high) |"
    ]
    out += ["|---|---|---|---|---|---|---|---|"]
    for key, b in pc["bins"].items():
        ln = b["lines"]
        cov = " | ".join(_f(ln.get(k, {}).get("coverage"), "{:.2f}") for k in (*SLOPE_LINES, "O3N2"))
        out.append(
            f"| {key} | {b['coverage_raw']:.3f} ({b['coverage']:.3f}) | {cov} | {_tertiles(ln.get('Halpha', {}))} |"
        )
    return out


def _miss_table(bins: dict) -> list[str]:
    """How the H-alpha and O3N2 intervals of the universe bins miss (:func:`.coverage_chance.miss_sides`)."""
    out = ["", "## How the intervals miss (universe bins)", ""]
    out += [
        "Truth below / above the 16-84 % interval (a truth below: the estimate sits above the galaxy); "
        "H-alpha coverage per tertile of its true flux in the bin; median of the draws' median over the "
        "true H-alpha.",
        "",
        "| bin | Ha below / above | Ha cov. per true-flux tertile (low / mid / high) | Ha draw median / truth "
        "| O3N2 below / above |",
        "|---|---|---|---|---|",
    ]
    for key, b in bins.items():
        ha, o3 = b["lines"].get("Halpha", {}), b["lines"].get("O3N2", {})
        out.append(
            f"| {key} | {_sides(ha)} | {_tertiles(ha)} | {_f(ha.get('median_ratio'), '{:.2f}')} | {_sides(o3)} |"
        )
    return out


def _f(v: Any, fmt: str = "{:.3f}") -> str:
    return "-" if v is None or (isinstance(v, float) and not np.isfinite(v)) else fmt.format(v)


def _class_table(pc: dict | None) -> list[str]:
    """Markdown rows of :func:`.posterior_bench.class_grid`: pixel (line-pixel), H-alpha and O3N2
    coverage; then how each class's H-alpha intervals miss."""
    if not pc:
        return []
    cls = list(pc["n"])
    head = ", ".join(f"{c} {n}" for c, n in pc["n"].items())
    out = ["", f"## Coverage per class ({pc['noise']} noise; spectra per class: {head})", ""]
    out += ["pixel (line pixels) / H-alpha / O3N2 16-84 % coverage", ""]
    out += ["| S/N | " + " | ".join(cls) + " |", "|---" * (len(cls) + 1) + "|"]
    for key, row in pc["bins"].items():
        cells = []
        for c in cls:
            r, ln = row[c], row[c]["lines"]
            ha, o3 = ln.get("Halpha", {}).get("coverage"), ln.get("O3N2", {}).get("coverage")
            cells.append(
                f"{r['coverage']:.3f} ({r['coverage_line_pixels']:.3f}) / {_f(ha, '{:.2f}')} / {_f(o3, '{:.2f}')}"
            )
        out.append(f"| {key} | " + " | ".join(cells) + " |")
    out += [
        "",
        "H-alpha per class: truth below / above the 16-84 % interval; median of the draws' median over the "
        "truth; the draws' sd over the input fit's own error (median; ~1 where the data fix the line) and the "
        "68th percentile of |draws' median - truth| / draws' sd (1: right-sized; above: too narrow)",
        "",
    ]
    out += ["| S/N | " + " | ".join(cls) + " |", "|---" * (len(cls) + 1) + "|"]
    for key, row in pc["bins"].items():
        has = [row[c]["lines"].get("Halpha", {}) for c in cls]
        out.append(f"| {key} | " + " | ".join(_halpha_cell(h) for h in has) + " |")
    return out


def _pair(ha: Any, o3: Any) -> str:
    """An H-alpha / O3N2 coverage cell."""
    return f"{_f(ha, '{:.2f}')} / {_f(o3, '{:.2f}')}"


def _own_cell(pc: dict | None, key: str, c: str) -> str:
    """`` (H-alpha / O3N2)`` of the class grid's (:func:`.posterior_bench.class_grid`) cell of class ``c``
    in bin ``key``, to stand beside another table's cell; empty where the grid has none."""
    u = ((pc or {}).get("bins", {}).get(key, {}).get(c) or {}).get("lines", {})
    return f" ({_pair(u.get('Halpha', {}).get('coverage'), u.get('O3N2', {}).get('coverage'))})" if u else ""


def _separability_table(pc: dict | None) -> list[str]:
    """Markdown rows of the class grid's ``separability`` (:mod:`.class_separability`)."""
    sep = (pc or {}).get("separability")
    if not sep:
        return []
    cls = list(pc["n"])
    out = ["", "How well the data tell the classes apart (the same spectra; a logistic classifier on features "
           "known at inference, 2-fold cross-validated): accuracy (chance) and each class's AUC against the rest "
           "(0.5: the data do not tell it from the others). A calibration that sees only the data cannot hold "
           "68 % within a class it cannot tell apart.", ""]  # fmt: skip
    out += ["| S/N | accuracy (chance) | " + " | ".join(f"AUC {c}" for c in cls) + " |", "|---" * (len(cls) + 2) + "|"]
    for key, r in sep.items():
        aucs = " | ".join(_f(r["auc"].get(c), "{:.2f}") for c in cls)
        out.append(f"| {key} | {r['accuracy']:.2f} ({r['chance']:.2f}) | {aucs} |")
    return out


def _library_table(lib: dict | None, pc: dict | None) -> list[str]:
    """Markdown rows of :func:`.library_posterior.library_by_class`, each cell beside the model's own
    per-class value from :func:`.posterior_bench.class_grid` (``pc``) where given."""
    if not lib:
        return []
    mix = ", ".join(f"{c} {n}" for c, n in lib["library_mix"].items())
    first = next(iter(lib["bins"].values()))
    cls = [c for c in first if c != "ess_median"]
    out = ["", f"## Per class under the universe's own population ({lib['n_library']} library spectra: {mix})", ""]
    out += ["H-alpha / O3N2 16-84 % coverage of the library posterior (importance-weighted library spectra; "
            "median effective sample size); in brackets the model's own cell above. A class this posterior "
            "misses too cannot be covered by any posterior that is right given the data.", ""]  # fmt: skip
    out += ["| S/N | ESS | " + " | ".join(cls) + " |", "|---" * (len(cls) + 2) + "|"]
    for key, row in lib["bins"].items():
        cells = [_pair(row[c]["Halpha"]["coverage"], row[c]["O3N2"]["coverage"]) + _own_cell(pc, key, c) for c in cls]
        out.append(f"| {key} | {row['ess_median']:.0f} | " + " | ".join(cells) + " |")
    return out


def _exact_table(ex: dict | None, pc: dict | None) -> list[str]:
    """Markdown rows of :func:`.posterior_bench_exact.exact_by_class`, each cell beside the universe's
    own per-class value from :func:`.posterior_bench.class_grid` (``pc``) where given."""
    if not ex:
        return []
    cls = list(ex["shares"])
    out = [
        "",
        f"## Per class when the prior is exact ({ex['n']} spectra drawn from the prior, {ex['noise']} noise)",
        "",
        "H-alpha / O3N2 16-84 % coverage of the exact posterior, each class weighted over the prior components "
        f"as its universe spectra fall in them at S/N {ex['share_snr']:g} (in brackets: the universe's own cell "
        "above); 'all': the prior's whole population. Where a class misses 0.68 here too, no correct posterior "
        "would give it 0.68: the data at that S/N cannot tell the class from the galaxies it is pulled towards.",
        "",
        "| S/N | all | " + " | ".join(cls) + " | components: H-alpha min / max |",
        "|---" * (len(cls) + 3) + "|",
    ]
    for key, b in ex["bins"].items():
        cells = [_pair(b["classes"][c]["Halpha"], b["classes"][c]["O3N2"]) + _own_cell(pc, key, c) for c in cls]
        comp = [v for v in b["per_component"]["Halpha"] if v is not None]
        span = f"{min(comp):.2f} / {max(comp):.2f}" if comp else "-"
        a = b["all"]
        out.append(f"| {key} | {_pair(a['Halpha'], a['O3N2'])} | " + " | ".join(cells) + f" | {span} |")
    return out


def _chance_table(cv: dict | None) -> list[str]:
    """Markdown rows of :func:`.posterior_bench.coverage_summary`: line and O3N2 cells within 0.68 +- 0.05
    against what a calibrated method gets by chance, and the chi^2 of their deviations."""
    if not cv:
        return []
    out = ["", "## Line and O3N2 coverage against chance", ""]
    out += [
        "Cells within 0.63-0.73, and how many a calibrated method would have (each cell's coverage a "
        "binomial share of its spectra; mean +- sd); chi^2 of the cells' deviations from 0.68 in binomial "
        "sds (its p-value with one degree of freedom per cell: small means more than chance); mean "
        "deviation in sds (below 0: intervals too narrow). The intervals are the draws' 16-84 % scaled by "
        "the model's interval factors per line and continuum S/N (fitted on its validation split); the "
        "'draws' own' rows leave them unscaled, and so does the prior check (it checks the inference).",
        "",
        "| cells | n | within | calibrated: within | chi2 | p | mean coverage | mean z |",
        "|---|---|---|---|---|---|---|---|",
    ]
    rows = {"universe (all)": cv["universe"]}
    rows |= {f"universe, {k}": v for k, v in cv["universe_per_line"].items()}
    rows |= {f"class {k} (H-alpha, O3N2)": v for k, v in (cv.get("per_class") or {}).items()}
    if "universe_uncalibrated" in cv:
        rows["universe (all), draws' own intervals"] = cv["universe_uncalibrated"]
        rows |= {f"universe, {k}, draws' own": v for k, v in cv["universe_per_line_uncalibrated"].items()}
        own = cv.get("per_class_uncalibrated") or {}
        rows |= {f"class {k} (H-alpha, O3N2), draws' own": v for k, v in own.items()}
    rows["prior check (exact posterior)"] = cv["prior_check"]
    for name, r in rows.items():
        out.append(
            f"| {name} | {r['n_cells']} | {r['within']} | {r['expected_within']:.1f} +- {r['expected_within_sd']:.1f} "
            f"| {r['chi2']:.1f} | {r['p_value']:.2g} | {r['mean_coverage']:.3f} | {r['mean_z']:+.2f} |"
        )
    return out


def _halpha_cell(h: dict[str, Any]) -> str:
    spread = f"{_f(h.get('sd_over_input_err'), '{:.2f}')}, {_f(h.get('z68'), '{:.2f}')}"
    return f"{_sides(h)}; {_f(h.get('median_ratio'), '{:.2f}')}; {spread}"


def render_markdown(res: dict[str, Any]) -> str:
    """A readable summary of :func:`.posterior_bench.run_bench`'s result."""
    lines = ["# Posterior de-noiser: evidence", ""]
    tr = res["training"]
    lines += [
        f"Prior: {res['model']['components']} components, rank {res['model']['latent_dim']} "
        f"+ {res['model']['hyper'].get('line_rank', 0)} line loadings, "
        f"fitted on {tr['n_prior']:.0f} clean universe spectra in {tr['prior_cpu_minutes']:.1f} CPU minutes; "
        f"inference {res['universe']['spectra_per_s']:.0f} spectra/s.",
        "",
        "## Held-out universe spectra per noise shape and continuum S/N",
        "",
        "Pixel coverage: within the calibrated sigma (raw: the exact posterior's sd). Line and O3N2: "
        "16-84 % intervals of the fast fitter's fluxes over the posterior draws (`sample`: the exact "
        "posterior). Target 0.68 (pixels +-0.03, lines +-0.05).",
        "",
        "| bin | S/N | pixel cov. (raw) | line-pix cov. | MSE truth / input | chi2 vs data | Ha cov. | Hb cov. "
        "| [OIII] cov. | [NII] cov. | O3N2 cov. | Ha slope/bias (det.; the input's own slope) |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for key, b in res["universe"]["bins"].items():
        ln = b["lines"]
        ha = ln.get("Halpha", {})
        lines.append(
            f"| {key} | {b['median_snr']:.2f} | {b['coverage']:.3f} ({b['coverage_raw']:.3f}) "
            f"| {b['coverage_line_pixels']:.3f} | {b['mse_truth'] / b['mse_input']:.3f} "
            f"| {b['chi2_red_vs_data']:.2f} | "
            + " | ".join(_f(ln.get(k, {}).get("coverage"), "{:.2f}") for k in SLOPE_LINES)
            + f" | {_f(ln.get('O3N2', {}).get('coverage'), '{:.2f}')} "
            f"| {_f(ha.get('slope_detected'), '{:.2f}')} / {_f(ha.get('bias_detected_dex'), '{:+.3f}')} "
            f"(input {_f(ha.get('slope_detected_input'), '{:.2f}')}; n={ha.get('n_detected', 0)}) |"
        )
    lines += _miss_table(res["universe"]["bins"])
    lines += _class_table(res.get("per_class"))
    lines += _separability_table(res.get("per_class"))
    lines += _exact_table(res.get("exact_by_class"), res.get("per_class"))
    lines += _library_table(res.get("library_by_class"), res.get("per_class"))
    lines += _prior_check_table(res.get("prior_check"))
    lines += _chance_table(res.get("coverage_vs_chance"))
    pc = res["paper_sigma_0.04"]
    lines += [
        "",
        f"## Paper's sigma = 0.04 (test split, n = {pc['n_test']}): loss vs truth",
        "",
        "| model | loss vs truth | MSE vs truth |",
        "|---|---|---|",
    ]
    for name, r in sorted(pc["models"].items(), key=lambda kv: kv[1].get("loss_truth", np.inf)):
        lines.append(f"| {name} | {_f(r.get('loss_truth'), '{:.1f}')} | {_f(r.get('mse_truth'), '{:.3e}')} |")
    lines += [
        "",
        "## Real spectra at native S/N",
        "",
        "| spectrum | z | S/N | chi2_red | mismatch floor f | OOD flags |",
        "|---|---|---|---|---|---|",
    ]
    for sid, r in res["real"].items():
        if "error" in r:
            lines.append(f"| {sid} | - | - | {r['error']} | - | - |")
        else:
            lines.append(
                f"| {sid} | {r['z']:.4f} | {r['median_snr']:.1f} | {r['chi2_red']:.2f} "
                f"| {r.get('mismatch_floor', 0.0):g} | {r['ood_flags']} |"
            )
    lines += ["", "## Out-of-domain flag rate (sky noise)", ""]
    cases = list(next(iter(res["ood"].values())))
    lines += ["| S/N | " + " | ".join(cases) + " |", "|---" * (len(cases) + 1) + "|"]
    for key, row in res["ood"].items():
        lines.append(f"| {key} | " + " | ".join(f"{row[c]['flag_rate']:.3f}" for c in cases) + " |")
    return "\n".join(lines) + "\n"
