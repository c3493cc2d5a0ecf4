"""Emission-line fluxes (paper section 4.3) with a fast, batched fitter.

The fitters: :func:`~specdenoise.evaluation.linefit.make_fast_fitter` (a non-negative E-MILES SSP
continuum fitted jointly with pixel-integrated Gaussian lines on the common rest-frame grid; see
:mod:`specdenoise.evaluation.linefit`) and pPXF. A line counts as fitted when its flux is finite
and positive; failed fits are kept out of the statistics.

Metrics (for each line, model and dimension):
``sigma`` the standard deviation of log10(F_model / F_reference) over lines fitted in both;
``sigma_fill`` the same over "filled" bins only (10 bins in log reference flux; a bin is filled
when it holds more than N / (n_bins + 1) points, the paper's definition); ``frac_fit`` the
fraction of reference-fitted lines also fitted in the model; ``bias`` the median log ratio.
The reference is the fit to the observed target (the paper's protocol) or the catalogue's true
flux. The ``crb`` rows give the same statistics for an ideal unbiased measurement whose error is
the Cramer-Rao bound of the line flux at the input noise level.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

from specdenoise.config import Params
from specdenoise.data.artefacts import Spectra, load_noisy, load_sample
from specdenoise.data.noise import added_ivar
from specdenoise.data.preprocess import rest_grid
from specdenoise.evaluation.level_recovery import other_levels
from specdenoise.evaluation.line_recovery import RECOVERY_LINES, stage_recovery
from specdenoise.evaluation.linefit import TABLE6_LINES, crb_flux_error, make_fast_fitter
from specdenoise.evaluation.ppxf_fit import PpxfFitter
from specdenoise.io import atomic_path, save_json, save_text
from specdenoise.models import store
from specdenoise.tracking.runs import add_to_runs
from specdenoise.training.splits import training_data


def filled_bins(log_ref: np.ndarray, n_bins: int = 10) -> np.ndarray:
    """Mask of points in "filled" bins: 10 bins over the range of ``log_ref``, a bin filled
    when it holds more than N / (n_bins + 1) points (paper section 4.3)."""
    log_ref = np.asarray(log_ref, dtype=float)
    n = len(log_ref)
    if n == 0:
        return np.zeros(0, dtype=bool)
    edges = np.linspace(log_ref.min(), log_ref.max(), n_bins + 1)
    idx = np.clip(np.searchsorted(edges, log_ref, side="right") - 1, 0, n_bins - 1)
    counts = np.bincount(idx, minlength=n_bins)
    return counts[idx] > n / (n_bins + 1)


def scatter_metrics(
    pred_flux: np.ndarray, pred_ok: np.ndarray, ref_flux: np.ndarray, ref_ok: np.ndarray, n_bins: int = 10
) -> dict[str, float]:
    """sigma, sigma_fill, frac_fit and bias of log10(pred / ref) (dex)."""
    ref_ok = np.asarray(ref_ok, bool) & (np.asarray(ref_flux) > 0)
    both = ref_ok & np.asarray(pred_ok, bool) & (np.asarray(pred_flux) > 0)
    n_ref = int(ref_ok.sum())
    if both.sum() < 3:
        return {
            "sigma": float("nan"),
            "sigma_fill": float("nan"),
            "frac_fit": both.sum() / max(n_ref, 1),
            "bias": float("nan"),
            "n": int(both.sum()),
        }
    ratio = np.log10(pred_flux[both]) - np.log10(ref_flux[both])
    full = filled_bins(np.log10(ref_flux[both]), n_bins)
    return {
        "sigma": float(np.std(ratio)),
        "sigma_fill": float(np.std(ratio[full])) if full.sum() > 1 else float("nan"),
        "frac_fit": float(both.sum() / max(n_ref, 1)),
        "bias": float(np.median(ratio)),
        "n": int(both.sum()),
    }


#: Paper Table 6: dim -> family -> line -> (sigma, sigma_fill), dex ("SII 5716" is [SII]6716).
PAPER_TABLE6 = {
    2: {
        "pca": [(0.52, 0.33), (0.51, 0.39), (0.82, 0.61), (0.64, 0.44), (0.65, 0.54), (0.68, 0.50)],
        "ae": [(0.45, 0.36), (0.52, 0.35), (0.75, 0.60), (0.61, 0.45), (0.53, 0.42), (0.64, 0.48)],
        "vae": [(0.42, 0.30), (0.56, 0.37), (0.75, 0.62), (0.53, 0.41), (0.49, 0.38), (0.59, 0.49)],
    },
    4: {
        "pca": [(0.44, 0.31), (0.56, 0.39), (1.00, 0.59), (0.58, 0.37), (0.70, 0.56), (0.64, 0.51)],
        "ae": [(0.41, 0.34), (0.54, 0.34), (0.71, 0.59), (0.55, 0.42), (0.52, 0.41), (0.62, 0.52)],
        "vae": [(0.36, 0.29), (0.45, 0.37), (0.74, 0.63), (0.52, 0.38), (0.55, 0.44), (0.56, 0.45)],
    },
    6: {
        "pca": [(0.43, 0.37), (0.70, 0.42), (0.82, 0.55), (0.58, 0.38), (0.72, 0.57), (0.62, 0.49)],
        "ae": [(0.43, 0.35), (0.52, 0.36), (0.72, 0.57), (0.51, 0.39), (0.52, 0.44), (0.61, 0.48)],
        "vae": [(0.37, 0.29), (0.41, 0.33), (0.76, 0.61), (0.53, 0.42), (0.54, 0.43), (0.59, 0.48)],
    },
    10: {
        "pca": [(0.55, 0.37), (0.64, 0.40), (0.86, 0.61), (0.60, 0.42), (0.73, 0.56), (0.71, 0.57)],
        "ae": [(0.41, 0.32), (0.48, 0.38), (0.80, 0.60), (0.59, 0.40), (0.67, 0.45), (0.60, 0.49)],
        "vae": [(0.43, 0.31), (0.45, 0.36), (0.77, 0.60), (0.53, 0.38), (0.64, 0.43), (0.59, 0.48)],
    },
}


def evaluate_lines(
    spectra: dict[str, np.ndarray],
    fit,
    ref_flux: dict[str, np.ndarray] | None,
    edges: np.ndarray,
    norm: np.ndarray,
    noise_sigma: float,
    lines: tuple[str, ...] = TABLE6_LINES,
    sigma_kms: float = 60.0,
    n_bins: int = 10,
    seed: int = 0,
) -> dict[str, Any]:
    """Fit every spectrum set with ``fit`` and score it against the observed target and the truth.

    Parameters
    ----------
    spectra : dict name -> (n, n_pix)
        Must contain ``"observed"`` (the reference set); every other set (noise-added input,
        model predictions) is scored against it. Normalised units.
    fit : callable
        ``flux (n, n_pix) -> {line: {"flux", "err", "ok"}}`` (e.g. :func:`make_fast_fitter`).
    ref_flux : dict line -> (n,), optional
        True fibre fluxes (1e-17 erg/s/cm^2) from the catalogue.
    norm : (n,)
        Normalisation factors, to turn normalised fluxes into 1e-17 erg/s/cm^2.
    noise_sigma : float
        Per-bin sigma of the added noise (normalised units), for the Cramer-Rao row.

    Returns
    -------
    dict
        ``sets``: name -> line -> {"vs_observed": metrics, "vs_truth": metrics}; the ``crb``
        set; ``fit_fraction_observed``; ``fluxes`` of the observed set (for figures).
    """
    fits = {name: fit(x) for name, x in spectra.items()}
    obs = fits["observed"]
    rng = np.random.default_rng(seed)
    result: dict[str, Any] = {"lines": list(lines), "sets": {}}
    for name, f in fits.items():
        if name == "observed":
            continue
        row: dict[str, Any] = {}
        for line in lines:
            flux = f[line]["flux"] * norm
            row[line] = {
                "vs_observed": scatter_metrics(flux, f[line]["ok"], obs[line]["flux"] * norm, obs[line]["ok"], n_bins)
            }
            if ref_flux is not None:
                truth = ref_flux[line]
                row[line]["vs_truth"] = scatter_metrics(
                    flux, f[line]["ok"], truth, np.isfinite(truth) & (truth > 0), n_bins
                )
        result["sets"][name] = row
    crb_row: dict[str, Any] = {}
    for line in lines:
        err = crb_flux_error(noise_sigma, edges, line, sigma_kms) * norm
        ref = obs[line]["flux"] * norm
        draw = ref + err * rng.standard_normal(len(ref))
        crb_row[line] = {
            "vs_observed": scatter_metrics(draw, draw > 0, ref, obs[line]["ok"], n_bins),
            "median_crb_flux_err": float(np.median(err)),
        }
        if ref_flux is not None:
            truth = ref_flux[line]
            draw_t = truth + err * rng.standard_normal(len(truth))
            crb_row[line]["vs_truth"] = scatter_metrics(draw_t, draw_t > 0, truth, truth > 0, n_bins)
    result["sets"]["crb"] = crb_row
    result["fit_fraction_observed"] = {line: float(np.mean(obs[line]["ok"])) for line in lines}
    result["fits"] = fits
    return result


def fitter_agreement(fast, ppxf_fitter, observed, truth, norm, true_flux) -> dict:
    """Fast fitter vs pPXF on the same spectra: median and scatter of log10(fast / pPXF), both
    on the observed spectra and on their noise-free truth, each fitter's median and scatter
    against the true fluxes (lines above 3e-17), and each fitter's throughput."""
    out: dict = {"n_spectra": int(len(observed))}
    for name, spec in (("observed", observed), ("truth_spectrum", truth)):
        t0 = time.perf_counter()
        a = fast(spec)
        t_fast = time.perf_counter() - t0
        t0 = time.perf_counter()
        b = ppxf_fitter(spec)
        t_ppxf = time.perf_counter() - t0
        per_line = {}
        for line in ("Halpha", "Hbeta", "Hdelta", "OIII_5007", "NII_6583", "SII_6716"):
            m = a[line]["ok"] & b[line]["ok"]
            r = np.log10(a[line]["flux"][m] / b[line]["flux"][m]) if m.any() else np.array([np.nan])
            per_line[line] = {
                "median_dex": float(np.median(r)),
                "scatter_dex": float(np.std(r)),
                "n_both": int(m.sum()),
                "frac_ok_fast": float(a[line]["ok"].mean()),
                "frac_ok_ppxf": float(b[line]["ok"].mean()),
            }
            if line in true_flux:
                t = true_flux[line]
                for tag, res in (("fast", a), ("ppxf", b)):
                    mm = res[line]["ok"] & (t > 3)
                    d = np.log10(res[line]["flux"][mm] * norm[mm] / t[mm]) if mm.any() else np.array([np.nan])
                    per_line[line][f"{tag}_vs_true_median_dex"] = float(np.median(d))
                    per_line[line][f"{tag}_vs_true_scatter_dex"] = float(np.std(d))
        out[name] = per_line
        if name == "observed":
            out["fast_spectra_per_s"] = len(spec) / max(t_fast, 1e-9)
            out["ppxf_spectra_per_s"] = len(spec) / max(t_ppxf, 1e-9)  # cached fits make re-runs faster
    return out


def table6_markdown(result: dict[str, Any], reference: str = "vs_observed") -> str:
    """Table 6 layout: rows per dimension and family, columns sigma / sigma_fill per line."""
    lines = result["lines"]
    head = "| model | " + " | ".join(f"{ln} sigma | {ln} sigma_fill" for ln in lines) + " |"
    out = [head, "|---|" + "---:|" * (2 * len(lines))]

    def cells(row):
        return " | ".join(
            f"{row[ln][reference]['sigma']:.2f} | {row[ln][reference]['sigma_fill']:.2f}"
            if reference in row[ln]
            else "- | -"
            for ln in lines
        )

    sets = result["sets"]
    dims = sorted({int(k.rsplit("_", 1)[1]) for k in sets if k.rsplit("_", 1)[-1].isdigit()})
    for special in ("noisy", "crb"):
        if special in sets:
            label = "noise-added input" if special == "noisy" else "Cramer-Rao bound"
            out.append(f"| {label} | {cells(sets[special])} |")
    for dim in dims:
        out.append(f"| **{dim} dimensions** |" + " |" * (2 * len(lines)))
        for fam in ("pca", "wiener", "ae", "vae"):
            key = f"{fam}_{dim}"
            if key in sets:
                out.append(f"| {fam.upper()} | {cells(sets[key])} |")
            paper = PAPER_TABLE6.get(dim, {}).get(fam)
            if paper and reference == "vs_observed" and tuple(lines) == TABLE6_LINES:
                out.append(f"| {fam.upper()} (paper) | " + " | ".join(f"{a:.2f} | {b:.2f}" for a, b in paper) + " |")
    return "\n".join(out) + "\n"


def figure9(
    result: dict[str, Any],
    ref_fluxes: dict[str, np.ndarray],
    pred: dict[str, dict[str, np.ndarray]],
    norm: np.ndarray,
    path,
    n_bins: int = 10,
) -> None:
    """Fig. 9: reference vs predicted flux per line (columns) and set (rows), binned medians
    with 16-84 % ranges, filled bins in black, with a histogram row of the reference fluxes."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    lines = result["lines"]
    names = list(pred)
    fig, axes = plt.subplots(
        len(names) + 1, len(lines), figsize=(2.6 * len(lines), 2.4 * (len(names) + 1)), squeeze=False
    )
    for j, line in enumerate(lines):
        ref, ref_ok = ref_fluxes[line]
        lr = np.log10(ref[ref_ok & (ref > 0)])
        axes[0, j].hist(lr, bins=n_bins, color="0.6")
        axes[0, j].set_title(line, fontsize=9)
        for i, name in enumerate(names, start=1):
            ax = axes[i, j]
            f = pred[name][line]["flux"] * norm
            ok = pred[name][line]["ok"] & ref_ok & (ref > 0) & (f > 0)
            x, y = np.log10(ref[ok]), np.log10(f[ok])
            if len(x) < 3:
                continue
            edges = np.linspace(x.min(), x.max(), n_bins + 1)
            idx = np.clip(np.searchsorted(edges, x, side="right") - 1, 0, n_bins - 1)
            counts = np.bincount(idx, minlength=n_bins)
            ax.plot(x, y, ".", ms=1, color="0.8")
            for b in range(n_bins):
                m = idx == b
                if m.sum() < 2:
                    continue
                q = np.percentile(y[m], [16, 50, 84])
                c = "k" if counts[b] > len(x) / (n_bins + 1) else "tab:orange"
                xc = 0.5 * (edges[b] + edges[b + 1])
                ax.errorbar(xc, q[1], yerr=[[q[1] - q[0]], [q[2] - q[1]]], fmt="o", ms=3, color=c)
            lim = [min(x.min(), y.min()), max(x.max(), y.max())]
            ax.plot(lim, lim, "--", lw=0.7, color="tab:blue")
            m = result["sets"][name][line]["vs_observed"]
            ax.text(
                0.03,
                0.97,
                f"s={m['sigma']:.2f}\nfill={m['sigma_fill']:.2f}",
                transform=ax.transAxes,
                va="top",
                fontsize=7,
            )
            if j == 0:
                ax.set_ylabel(name, fontsize=8)
    fig.tight_layout()
    with atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp, dpi=90, format="png")
    plt.close(fig)


def _flatten(details: dict[str, dict[str, Any]]) -> dict[str, dict[str, float]]:
    """Per model: ``{stat}_{line}`` against the observed fit and ``{stat}_{line}_truth`` against the truth."""
    models = {}
    for key, row in details.items():
        flat = {}
        for ln, m in row.items():
            for ref, tag in (("vs_observed", ""), ("vs_truth", "_truth")):
                if ref in m:
                    for stat in ("sigma", "sigma_fill", "frac_fit", "bias"):
                        flat[f"{stat}_{ln}{tag}"] = m[ref][stat]
        models[key] = flat
    return models


def run(
    params: Params,
    spectra: Path,
    noisy: Path,
    sample: Path,
    models_dir: Path,
    templates: Path,
    out: Path,
    table: Path,
    figures_dir: Path,
    tracking: bool = True,
    progress: bool = False,
    levels_dir: Path | None = None,
) -> tuple[str, float]:
    """The ``lines`` stage: fit every model's de-noised test spectra (and the input and target),
    write the metrics, Table 6 and Fig. 9, and add the per-line metrics to each model's MLflow run;
    with ``levels_dir`` (the other noise levels) the recovery at each level (``recovery_levels``).
    Returns the Table 6 Markdown and the fitter's spectra per second."""
    lc = params.lines
    pre = Spectra.load(spectra).require("truth", "split", source=str(spectra))
    nz = load_noisy(noisy)
    smp = load_sample(sample, tuple(f"{ln}_flux" for ln in dict.fromkeys(TABLE6_LINES + RECOVERY_LINES)))
    _, test = training_data(pre, nz, params)
    idx = test["index"]
    norm = pre.norm[idx]
    edges, _ = rest_grid(params.preprocess)
    fast = make_fast_fitter(templates, edges, lc.sigma_kms, lc.n_components)
    ppxf_fitter = None
    if lc.fitter == "ppxf" or lc.ppxf_max_spectra > 0:
        cache = Path("data/interim/ppxf_cache")
        ppxf_fitter = PpxfFitter(templates, pre.wave, cache_dir=cache, n_jobs=2, progress=progress)
    fit = ppxf_fitter if lc.fitter == "ppxf" else fast
    sets = {"observed": test["y"], "noisy": test["x"]}
    run_ids, loaded = {}, {}
    ivar = added_ivar(nz)  # reaches noise-aware models
    for tm in store.list_models(models_dir, lc.dims, paper_only=True):  # paper level (other levels: below)
        loaded[tm.name] = tm.load()
        sets[tm.name] = loaded[tm.name].denoise_given(test["x"], ivar)
        run_ids[tm.name] = tm.run_id()
    truth = {ln: smp[f"{ln}_flux"].to_numpy()[idx] for ln in TABLE6_LINES}
    t_fit = time.perf_counter()
    res = evaluate_lines(
        sets, fit, truth, edges, norm, float(np.mean(nz.sigma)), TABLE6_LINES, lc.sigma_kms, lc.n_bins, lc.seed
    )
    fit_s, fits, n_spec = time.perf_counter() - t_fit, res.pop("fits"), sum(len(v) for v in sets.values())
    models = _flatten(res["sets"])
    out_obj = {
        "lines": list(TABLE6_LINES),
        "models": models,
        "details": res["sets"],
        "fit_fraction_observed": res["fit_fraction_observed"],
        "fitter": lc.fitter,
        f"{lc.fitter}_spectra_per_s": n_spec / fit_s,
        "n_test": int(len(idx)),
    }
    if ppxf_fitter is not None and lc.ppxf_max_spectra > 0:
        # a seeded random subset across all flux bins (the test set is sorted by bin)
        k = min(lc.ppxf_max_spectra, len(idx))
        sub = np.sort(np.random.default_rng(lc.seed).choice(len(idx), size=k, replace=False))
        true_sub = {ln: truth[ln][sub] for ln in TABLE6_LINES}
        out_obj["ppxf_agreement"] = fitter_agreement(
            fast, ppxf_fitter, test["y"][sub], test["truth"][sub], norm[sub], true_sub
        )
    same = fits if fit is fast else None  # recovery uses the fast fitter throughout
    out_obj["recovery"] = stage_recovery(params, pre, nz, smp, fast, sets, loaded, test, norm, edges, same, ivar)
    out_obj["recovery_levels"] = other_levels(params, pre, smp, fast, edges, models_dir, levels_dir)
    save_json(out, out_obj)
    text = "# Table 6: line-flux scatter (dex) against the fit to the observed target\n\n" + table6_markdown(res)
    text += "\n## Against the true line fluxes of the universe\n\n" + table6_markdown(res, "vs_truth")
    save_text(table, text)
    obs_fit = fits["observed"]
    show = [k for k in ("noisy", "pca_4", "ae_4", "vae_4") if k in fits] or [k for k in fits if k != "observed"][:3]
    ref = {ln: (obs_fit[ln]["flux"] * norm, obs_fit[ln]["ok"]) for ln in TABLE6_LINES}
    figure9(res, ref, {k: fits[k] for k in show}, norm, figures_dir / "fig9_line_fluxes.png", lc.n_bins)
    if tracking:
        logged = {rid: models[key] for key, rid in run_ids.items() if rid and key in models}
        if logged:
            add_to_runs(params, metrics=logged)
    return text, n_spec / fit_s
