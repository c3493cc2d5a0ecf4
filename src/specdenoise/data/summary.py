"""Data summary next to the paper: class mix (Table 1) and PCA variance (Tables 2-3).

The paper's published numbers are kept here only as the reference column; every other
number is measured on the data the pipeline produced.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from specdenoise.config import Params
from specdenoise.data.artefacts import CLASS_COLUMNS, Spectra, load_noisy, load_sample
from specdenoise.io import save_json, save_text

#: Paper Table 1, "Sample" column.
PAPER_TABLE1 = {
    "emission_line": 4522,
    "absorption": 4003,
    "quiescent": 1175,
    "narrow_line_agn": 297,
    "broad_line_agn": 3,
}
#: Paper Table 2 (noise-added) and Table 3 (original): component -> (variance, cumulative %).
PAPER_TABLE2 = {1: (4.4e-2, 3.19), 2: (9.6e-3, 3.89), 4: (3.0e-3, 4.50), 6: (2.8e-3, 4.90), 10: (2.7e-3, 5.70)}
PAPER_TABLE3 = {
    1: (4.2e-2, 69.77),
    2: (7.7e-3, 82.56),
    4: (1.0e-3, 89.82),
    5: (4.8e-4, 90.62),
    6: (4.3e-4, 91.32),
    10: (1.3e-4, 92.55),
}
PAPER_N90 = {"noisy": 677, "clean": 5}
PAPER_N99 = {"noisy": 808, "clean": 384}
COMPONENTS = (1, 2, 4, 5, 6, 10)


def pca_variance(x: np.ndarray) -> dict[str, Any]:
    """Variance explained by each principal component of ``x`` (n, n_pix).

    Returns the variances of the components in :data:`COMPONENTS`, their percentages and
    cumulative percentages, the total variance and the number of components that reach 90 %
    and 99 %.
    """
    x = np.asarray(x, dtype=float)
    xc = x - x.mean(axis=0)
    s = np.linalg.svd(xc, compute_uv=False)
    var = s**2 / (len(x) - 1)
    total = var.sum()
    cum = np.cumsum(var) / total
    return {
        "total_variance": float(total),
        "components": {
            str(k): {
                "variance": float(var[k - 1]),
                "percent": float(100 * var[k - 1] / total),
                "cumulative_percent": float(100 * cum[k - 1]),
            }
            for k in COMPONENTS
            if k <= len(var)
        },
        "n_for_90": int(np.searchsorted(cum, 0.90) + 1),
        "n_for_99": int(np.searchsorted(cum, 0.99) + 1),
    }


def data_summary(pre: dict, noisy: dict, sample, params: Params) -> dict[str, Any]:
    train = np.asarray(pre["split"]).astype(str) == "train"
    counts = {c: int(v) for c, v in sample["class"].astype(str).value_counts().items()}
    noisy0 = noisy["noisy"][0].astype(float)
    before = noisy0 * noisy["renorm"][0][:, None]
    return {
        "n_spectra": int(len(train)),
        "n_train": int(train.sum()),
        "class_counts": counts,
        "pca_clean": pca_variance(pre["flux"][train]),
        "pca_truth": pca_variance(pre["truth"][train]),
        "pca_noisy": pca_variance(noisy0[train]),
        "pca_noisy_before_renorm": pca_variance(before[train]),
        "norm": params.preprocess.norm,
        "noise_sigma": params.noise.sigma,
        "renormalise": params.noise.renormalise,
    }


def render_markdown(s: dict[str, Any]) -> str:
    lines = [
        "# Data summary vs the paper",
        "",
        f"{s['n_spectra']} spectra ({s['n_train']} train), `{s['norm']}` normalisation, "
        f"noise sigma = {s['noise_sigma']}.",
        "",
    ]
    lines += [
        "## Class mix (paper Table 1, 'Sample' column)",
        "",
        "| class | here | here % | paper | paper % |",
        "|---|---:|---:|---:|---:|",
    ]
    tot = sum(s["class_counts"].values()) or 1
    ptot = sum(PAPER_TABLE1.values())
    for c, pv in PAPER_TABLE1.items():
        v = s["class_counts"].get(c, 0)
        lines.append(f"| {c} | {v} | {100 * v / tot:.1f} | {pv} | {100 * pv / ptot:.1f} |")
    for title, key, ref, kind in (
        ("Noise-added spectra (paper Table 2)", "pca_noisy", PAPER_TABLE2, "noisy"),
        ("Original (clean) spectra (paper Table 3)", "pca_clean", PAPER_TABLE3, "clean"),
    ):
        p = s[key]
        lines += ["", f"## PCA variance: {title}", "", f"Total variance {p['total_variance']:.4g}.", ""]
        lines += [
            "| component | variance | cumulative % | paper variance | paper cumulative % |",
            "|---:|---:|---:|---:|---:|",
        ]
        for k, row in p["components"].items():
            r = ref.get(int(k))
            pv = f"{r[0]:.2g} | {r[1]:.2f}" if r else "- | -"
            lines.append(f"| {k} | {row['variance']:.2g} | {row['cumulative_percent']:.2f} | {pv} |")
        lines.append(f"| n for 90 % | {p['n_for_90']} | | {PAPER_N90[kind]} | |")
        lines.append(f"| n for 99 % | {p['n_for_99']} | | {PAPER_N99[kind]} | |")
    pn, pt = s["pca_noisy_before_renorm"], s["pca_truth"]
    lines += [
        "",
        f"Noise-added spectra before renormalisation ({s['renormalise']} renormalisation is applied above): "
        "total variance "
        f"{pn['total_variance']:.4g}, first component {pn['components']['1']['variance']:.2g} "
        f"({pn['components']['1']['cumulative_percent']:.2f} %).",
        f"Noise-free truth (beyond the paper): first component {pt['components']['1']['cumulative_percent']:.2f} %, "
        f"90 % at {pt['n_for_90']} and 99 % at {pt['n_for_99']} components.",
        "",
    ]
    return "\n".join(lines)


def run(params: Params, spectra: Path, noisy: Path, sample: Path, out_json: Path, out_md: Path) -> str:
    """The ``summary`` stage: class mix and PCA variance next to the paper; returns the Markdown."""
    pre = Spectra.load(spectra).require("truth", "split", source=str(spectra))
    summ = data_summary(pre, load_noisy(noisy), load_sample(sample, CLASS_COLUMNS), params)
    save_json(out_json, summ)
    text = render_markdown(summ)
    save_text(out_md, text)
    return text
