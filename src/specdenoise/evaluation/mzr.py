"""The mass-metallicity relation from de-noised DESI-like spectra (paper section 5, Fig. 10).

For each spectrum set (a) original SDSS-like, (b) DESI-like, (c) DESI-like de-noised by the
re-trained VAE: line fluxes from the fast fitter. Errors for (a) and (b) are propagated from
their observed per-pixel noise. A de-noised spectrum has no noise of its own, so two
conventions are reported: (c) the fitter's formal error from its fit residuals (what a line
fitter run on the de-noised spectrum reports, as the paper did with pPXF), and (c') errors
propagated from the model's own per-pixel error, the rms of (de-noised - truth) on the
*validation* split (honest, and much larger). 12 + log(O/H) from the Pettini & Pagel (2004)
O3N2 calibration (paper eq. 6); a metallicity counts when H-alpha has S/N > ``mzr.snr_min``
(15, Scholte & Saintonge 2023) and all four lines are positive.

Reported per set: the fraction of galaxies with a measurable metallicity; the scatter about a
reference relation - the Curti et al. (2020) form used by Scholte & Saintonge (2023),
Z(M) = Z0 - (gamma / beta) log10(1 + (M / M0)^-beta), fitted once to set (a) - as the standard
deviation and as 1.4826 x MAD; the median metallicity error; and the SFR dependence of the
scatter: the Spearman correlation (and OLS slope) of the metallicity residual with the SFR
offset at fixed mass (log SFR minus its median in the galaxy's mass bin). The same statistics
for the universe's true metallicities are given for context.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from specdenoise.config import Params
from specdenoise.data.artefacts import MZR_SAMPLE_COLUMNS, DesiSet, Spectra, load_sample
from specdenoise.data.preprocess import rest_grid
from specdenoise.errors import DataError
from specdenoise.evaluation.linefit import make_fast_fitter
from specdenoise.evaluation.mzr_posterior import default_posterior_uri, from_draws
from specdenoise.evaluation.mzr_posterior_report import markdown as posterior_md
from specdenoise.evaluation.mzr_truth import (  # noqa: F401 (o3n2, pp04_o3n2: this module's interface)
    MZR_LINES,
    curti,
    fit_reference,
    metallicities,
    o3n2,
    pp04_o3n2,
    scatter_stats,
    true_o3n2,
    vs_true,
)
from specdenoise.evaluation.stats import spearman
from specdenoise.io import atomic_path, load_json, save_json, save_text
from specdenoise.survey.denoiser import Denoiser
from specdenoise.survey.readers.spectrum import sigma_from_ivar
from specdenoise.tracking import set_champion
from specdenoise.tracking.runs import log_stage_run
from specdenoise.training.splits import split_indices


def evaluate_mzr(
    sets: dict[str, dict[str, dict[str, np.ndarray]]],
    log_mass: np.ndarray,
    log_sfr: np.ndarray,
    oh_true: np.ndarray,
    snr_min: float,
    n_bins: int,
    true_flux: dict[str, np.ndarray] | None = None,
) -> dict[str, Any]:
    """MZR statistics for each spectrum set.

    Parameters
    ----------
    sets : dict
        ``{"original": fits, "desi": fits, "denoised": fits}``, each the fitter's output for the
        same n galaxies (the first set defines the reference relation).
    log_mass, log_sfr, oh_true : ndarray (n,)
        Catalogue stellar mass (log M_sun), total SFR (log M_sun/yr), true 12 + log(O/H).
    true_flux : dict line -> (n,), optional
        True fluxes of :data:`MZR_LINES`: the truth row then uses their O3N2 (the quantity the
        sets measure), and each set gets ``vs_true`` (:func:`~specdenoise.evaluation.mzr_truth.vs_true`).

    Returns
    -------
    dict
        ``reference`` (the fitted relation and which set), ``sets`` {name: fraction measurable,
        scatter, scatter_mad, bias, median error, SFR rho / slope, n, vs_true}, ``truth`` (same
        statistics for the O3N2 metallicities of the true fluxes of all galaxies, or the
        catalogue's O/H without ``true_flux``), ``truth_catalogue`` and per-galaxy arrays under ``_arrays``
        (for the figure; not written to JSON).
    """
    names = list(sets)
    per = {k: metallicities(v, snr_min) for k, v in sets.items()}
    first = per[names[0]]
    m = first["measurable"]
    if m.sum() < 10:
        raise DataError(f"mzr: only {int(m.sum())} galaxies have a measurable metallicity in the '{names[0]}' spectra")
    ref = fit_reference(log_mass[m], first["oh"][m])
    out: dict[str, Any] = {
        "reference": {"form": "Curti et al. 2020 (as Scholte & Saintonge 2023)", "fitted_to": names[0], **ref},
        "n_galaxies": int(len(log_mass)),
        "snr_min": snr_min,
        "sets": {},
    }
    for k, r in per.items():
        mk = r["measurable"]
        st = scatter_stats(log_mass[mk], r["oh"][mk], log_sfr[mk], ref, n_bins)
        st.update(
            fraction_measurable=float(mk.mean()),
            median_error=float(np.median(r["oh_err"][mk])) if mk.any() else float("nan"),
        )
        out["sets"][k] = st
    # agreement with the original set, galaxy by galaxy
    for k in names[1:]:
        both = per[k]["measurable"] & m
        d = per[k]["oh"][both] - first["oh"][both]
        out["sets"][k]["vs_original_median"] = float(np.median(d)) if both.any() else float("nan")
        out["sets"][k]["vs_original_scatter"] = float(np.std(d)) if both.sum() > 1 else float("nan")
        out["sets"][k]["vs_original_rho"] = spearman(per[k]["oh"][both], first["oh"][both])
    # the truth row: O3N2 of the true fluxes of the same galaxies (what the sets measure); the
    # catalogue's O/H (a different quantity) is kept for context
    oh_lines = oh_true if true_flux is None else pp04_o3n2(true_o3n2(true_flux))
    ok = np.isfinite(oh_lines)
    truth_ref = fit_reference(log_mass[ok], oh_lines[ok])
    out["truth"] = {
        "source": "catalogue 12+log(O/H)" if true_flux is None else "O3N2 of the true line fluxes (PP04)",
        "reference": truth_ref,
        **scatter_stats(log_mass[ok], oh_lines[ok], log_sfr[ok], truth_ref, n_bins),
    }
    cat_ref = fit_reference(log_mass, oh_true)
    out["truth_catalogue"] = {"reference": cat_ref, **scatter_stats(log_mass, oh_true, log_sfr, cat_ref, n_bins)}
    if true_flux is not None:
        o3_true = true_o3n2(true_flux)
        for k, r in per.items():
            out["sets"][k]["vs_true"] = vs_true(r["oh"], r["oh_err"], r["measurable"], o3_true, log_mass, log_sfr)
    out["_arrays"] = {k: {"oh": r["oh"], "measurable": r["measurable"]} for k, r in per.items()}
    return out


def figure10(
    result: dict[str, Any], log_mass: np.ndarray, log_sfr: np.ndarray, path, titles: dict[str, str] | None = None
) -> None:
    """Fig. 10: the MZR of each set coloured by SFR, the reference relation, percentiles in
    filled mass bins and the mass histograms of all vs measurable galaxies."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    arrays = result["_arrays"]
    names = [k for k in arrays if k in FIGURE_SETS] or list(arrays)
    ref = {k: result["reference"][k] for k in ("z0", "log_m0", "gamma", "beta")}
    fig, axes = plt.subplots(
        2, len(names), figsize=(5 * len(names), 6.5), sharex=True, gridspec_kw={"height_ratios": [3, 1]}
    )
    grid = np.linspace(log_mass.min(), log_mass.max(), 100)
    edges = np.linspace(log_mass.min(), log_mass.max(), 9)
    vmin, vmax = np.percentile(log_sfr, [2, 98])
    for j, k in enumerate(names):
        ax, hx = axes[0, j], axes[1, j]
        mk = arrays[k]["measurable"]
        sc = ax.scatter(
            log_mass[mk], arrays[k]["oh"][mk], c=log_sfr[mk], s=4, cmap="viridis", vmin=vmin, vmax=vmax, rasterized=True
        )
        ax.plot(grid, curti(grid, **ref), "k-", lw=1.5, label="reference (fit to original)")
        idx = np.digitize(log_mass[mk], edges) - 1
        for b in range(len(edges) - 1):
            v = arrays[k]["oh"][mk][idx == b]
            if len(v) >= 20:
                q = np.percentile(v, [16, 50, 84])
                c = 0.5 * (edges[b] + edges[b + 1])
                ax.errorbar(c, q[1], yerr=[[q[1] - q[0]], [q[2] - q[1]]], fmt="o", color="crimson", ms=4, capsize=3)
        st = result["sets"][k]
        ax.set_title(
            f"{(titles or {}).get(k, k)}\nsigma = {st['scatter']:.3f} dex, "
            f"{100 * st['fraction_measurable']:.0f}% measurable",
            fontsize=10,
        )
        ax.set_ylim(8.0, 9.0)
        ax.set_ylabel("12 + log(O/H) [O3N2, PP04]")
        hx.hist(log_mass, bins=edges, color="tab:orange", alpha=0.6, label="all")
        hx.hist(log_mass[mk], bins=edges, color="tab:blue", alpha=0.7, label=f"H-alpha S/N > {result['snr_min']:g}")
        hx.set_xlabel("log M* / M_sun")
        if j == 0:
            ax.legend(loc="lower right", fontsize=8)
            hx.legend(fontsize=7)
    fig.colorbar(sc, ax=axes[0, :].tolist(), label="log SFR / (M_sun/yr)")
    with atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp, dpi=110)
    plt.close(fig)


PAPER = {
    "original": {"scatter": 0.09, "median_error": 0.09},
    "desi": {"scatter": None, "median_error": 0.09},
    "denoised": {"scatter": 0.12, "median_error": 0.09},
}
TITLES = {
    "original": "(a) original SDSS-like",
    "desi": "(b) DESI-like (z = 0.1)",
    "denoised": "(c) DESI-like, VAE de-noised",
    "denoised_calibrated": "(c') as (c), errors from the model's validation error",
}
FIGURE_SETS = ("original", "desi", "denoised")
#: The error each set's "measurable" (H-alpha S/N > mzr.snr_min) rests on; only (c') is calibrated.
MEASURABLE_BY = {
    "original": "observed per-pixel noise, propagated",
    "desi": "DESI-like per-pixel noise, propagated",
    "denoised": "fit residuals of the de-noised spectrum (formal, not calibrated)",
    "denoised_calibrated": "model's validation rms per pixel, propagated (calibrated; the stated one)",
}


def _sigma_from_ivar(ivar: np.ndarray) -> np.ndarray:
    """Per-pixel sigma from inverse variance; masked pixels (filled by interpolation in
    preprocessing) get the largest sigma of their spectrum."""
    sig = sigma_from_ivar(np.asarray(ivar, dtype=float))
    worst = np.nanmax(np.where(np.isfinite(sig), sig, np.nan), axis=1, keepdims=True)
    return np.where(np.isfinite(sig), sig, worst)


def measure(params: Params, pre: Any, desi: Any, sample: Any, templates: Path, model: Any) -> dict[str, Any]:
    """The MZR evaluation on the test split of the star-forming sample.

    Parameters
    ----------
    params : Params
    pre : dict
        Preprocessed original spectra of the star-forming sample (``flux``, ``ivar``, ``truth``,
        ``split``, ``id``).
    desi : dict
        Output of :func:`specdenoise.data.desi.desi_like` for the same galaxies (same order).
    sample : pandas.DataFrame
        The star-forming sample (``id``, ``log_mass``, ``log_sfr``, ``oh``).
    templates : Path
        E-MILES templates for the fast line fitter.
    model : DenoisingModel
        The DESI-trained VAE (loaded from the registry by alias by the caller).
    """
    if not np.array_equal(np.asarray(pre["id"]), np.asarray(desi["id"])):
        raise DataError(
            "mzr: the DESI-like spectra and the original spectra list different galaxies (rerun `mzr desi`)"
        )
    cat = sample.set_index("id").loc[np.asarray(pre["id"])]
    _, val, test = split_indices(pre["split"], params)
    x = np.asarray(desi["noisy"][0], dtype=np.float32)
    den_val = model.denoise(x[val])
    sigma_model = np.sqrt(np.mean((den_val - np.asarray(pre["truth"])[val]) ** 2, axis=0))
    den = model.denoise(x[test])
    edges, _ = rest_grid(params.preprocess)
    fit = make_fast_fitter(templates, edges, params.lines.sigma_kms, params.lines.n_components)
    sets = {
        "original": fit(np.asarray(pre["flux"])[test], _sigma_from_ivar(np.asarray(pre["ivar"])[test])),
        "desi": fit(x[test], _sigma_from_ivar(np.asarray(desi["ivar"])[test])),
        "denoised": fit(den),
        "denoised_calibrated": fit(den, sigma_model),
    }
    lm = cat["log_mass"].to_numpy()[test]
    ls = cat["log_sfr"].to_numpy()[test]
    true_flux = {k: cat[f"{k}_flux"].to_numpy()[test] for k in MZR_LINES} if f"{MZR_LINES[0]}_flux" in cat else None
    res = evaluate_mzr(sets, lm, ls, cat["oh"].to_numpy()[test], params.mzr.snr_min, params.mzr.n_mass_bins, true_flux)
    res["measurable_by"] = MEASURABLE_BY
    res["sigma_model_median"] = float(np.median(sigma_model))
    res["sigma_desi_median"] = float(np.median(_sigma_from_ivar(np.asarray(desi["ivar"])[test])))
    res["n_test"] = int(len(test))
    res["paper"] = PAPER
    res["_mass"], res["_sfr"] = lm, ls
    return res


def render_markdown(res: dict[str, Any]) -> str:
    """The three-way table next to the paper's numbers, and each set against the true O3N2."""
    rows = [
        "| spectra | measurable | scatter (dex) | 1.48 MAD | median error | SFR rho | SFR slope | O3N2 slope vs true "
        "| coef. of true O/H | O/H coverage | paper scatter |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for k, st in res["sets"].items():
        ps = PAPER.get(k, {}).get("scatter")
        vt = st.get("vs_true")
        true_cells = (
            f"{vt['o3n2']['slope_ols']:.2f} | {vt['oh_fit']['oh_true']:.2f} | {100 * vt['oh_coverage']:.0f} %"
            if vt
            else "- | - | -"
        )
        rows.append(
            f"| {TITLES.get(k, k)} | {100 * st['fraction_measurable']:.1f} % ({st['n']}) | {st['scatter']:.3f} | "
            f"{st['scatter_mad']:.3f} | {st['median_error']:.3f} | {st['sfr_rho']:+.2f} | {st['sfr_slope']:+.3f} | "
            f"{true_cells} | {'poorly recovered' if ps is None else ps} |"
        )
    t = res["truth"]
    rows.append(
        f"| universe truth ({t.get('source', 'true O/H')}) | 100 % ({t['n']}) | {t['scatter']:.3f} | "
        f"{t['scatter_mad']:.3f} | - | {t['sfr_rho']:+.2f} | {t['sfr_slope']:+.3f} | 1 | 1 | - | - |"
    )
    ref = res["reference"]
    head = (
        f"Test split of the star-forming sample: {res['n_galaxies']} galaxies; "
        f"metallicity where H-alpha S/N > {res['snr_min']:g}.\n"
        f"Reference: {ref['form']} fitted to the {ref['fitted_to']} set: "
        f"Z0 = {ref['z0']:.3f}, log M0 = {ref['log_m0']:.2f}, "
        f"gamma = {ref['gamma']:.3f}, beta = {ref['beta']:.2f}. "
        "SFR rho / slope: Spearman correlation / OLS slope of the "
        "metallicity residual with the SFR offset at fixed mass "
        "(negative = metal-poorer at higher SFR, the universe's FMR). O3N2 slope: OLS slope of the set's "
        "O3N2 on the O3N2 of the true fluxes; coef. of true O/H: its coefficient in an OLS fit of the set's "
        "O/H on true O/H, log M* and log SFR (1 = measured, 0 = supplied by mass and SFR); O/H coverage: "
        "fraction of true O/H within the stated 1-sigma error. Measurable rests on: "
        + "; ".join(f"{k}: {v}" for k, v in res.get("measurable_by", {}).items())
        + ".\n"
    )
    return "# Mass-metallicity relation (paper section 5, Fig. 10)\n\n" + head + "\n" + "\n".join(rows) + "\n"


def run(
    params: Params,
    spectra: Path,
    desi: Path,
    sample: Path,
    templates: Path,
    out: Path,
    out_md: Path,
    figure: Path,
    model: str | None = None,
    tracking: bool = True,
    posterior_model: str | None = None,
    desi_model: Path | None = None,
) -> str:
    """The ``mzr`` stage: promote the DESI VAE's champion (among the versions of ``desi_model``'s run,
    the model ``train_desi`` trained), load it from the registry, measure
    metallicities of the original, DESI-like and de-noised spectra, write the table, Fig. 10 and
    the metrics (also to an ``mzr`` MLflow run). Returns a summary line."""
    pre = Spectra.load(spectra).require("truth", "split", "id", source=str(spectra))
    dz = DesiSet.load(desi)
    smp = load_sample(sample, MZR_SAMPLE_COLUMNS)
    champion = None
    if tracking:
        record = None if desi_model is None else Path(desi_model) / "metrics.json"
        run_id = load_json(record).get("run_id") if record is not None and record.exists() else None
        ids = {run_id} if run_id else None
        champion = set_champion(params.tracking, registered_model=params.mzr.registered_model, run_ids=ids)
    uri = model or f"models:/{params.mzr.registered_model}@champion"
    den = Denoiser.load(uri, params=params)
    res = measure(params, pre, dz, smp, templates, den.model)
    post_uri = posterior_model or default_posterior_uri(params)
    if post_uri and params.mzr.posterior_draws > 0:
        post = Denoiser.load(post_uri, params=params).model
        res["posterior"] = {"model_uri": post_uri, **from_draws(params, pre, dz, smp, templates, post)}
    figure10(res, res.pop("_mass"), res.pop("_sfr"), figure, TITLES)
    res.pop("_arrays")
    res.update(
        model_uri=uri,
        champion=champion,
        provenance={k: v for k, v in den.provenance.items() if isinstance(v, (str, int, float))},
    )
    flat = {f"mzr_{k}_{m}": v for k, st in res["sets"].items() for m, v in st.items() if isinstance(v, (int, float))}
    for k, st in res["sets"].items():
        if "vs_true" in st:
            flat[f"mzr_{k}_o3n2_slope_vs_true"] = st["vs_true"]["o3n2"]["slope_ols"]
            flat[f"mzr_{k}_oh_true_coef"] = st["vs_true"]["oh_fit"]["oh_true"]
            flat[f"mzr_{k}_oh_coverage"] = st["vs_true"]["oh_coverage"]
    if "posterior" in res:
        flat.update({f"mzr_posterior_{k}": v for k, v in res["posterior"]["diff"].items()})
        hier = res["posterior"]["hierarchical"]
        flat.update({f"mzr_posterior_hier_{k}": v for k, v in hier["diff"].items()})
        flat["mzr_posterior_hier_meets_every_bandwidth"] = float(hier["meets_every_bandwidth"])
    if tracking:
        log_stage_run(params, "mzr", tags={"sample": "desi", "model_uri": uri}, metrics=flat, artifacts=[figure])
    save_json(out, {**res, "metrics": flat})
    save_text(out_md, render_markdown(res) + (posterior_md(res["posterior"], post_uri) if "posterior" in res else ""))
    s = res["sets"]
    return (
        "mzr: measurable "
        + ", ".join(f"{k} {100 * v['fraction_measurable']:.0f}%" for k, v in s.items())
        + "; scatter "
        + ", ".join(f"{k} {v['scatter']:.3f}" for k, v in s.items())
        + f" dex -> {out}"
    )
