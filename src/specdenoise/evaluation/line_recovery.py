"""What each de-noiser recovers of the lines and indices, and how much comes from its prior.

Run by the ``lines`` stage (:func:`recovery_report`) for every spectrum set it fits: the
noise-added input (``noisy``), every trained model in the store (its de-noised test spectra)
and, for reference, the observed targets. For each set the fast fitter's fluxes (times the
normalisation: 1e-17 erg/s/cm^2) are compared, galaxy by galaxy, with two references:

``vs_truth``
    the catalogue's true fibre fluxes (what the universe put in), and
``vs_noise_free_fit``
    the fast fitter's fluxes on the NOISE-FREE spectrum of the same galaxy: the fitter's own
    error cancels, so this isolates the de-noiser.

Statistics: :func:`specdenoise.evaluation.recovery.recovery_metrics` in log10 (dex): OLS and
Theil-Sen slope of log recovered on log reference, median bias overall and per reference
tertile (faint, middle, bright), spread ratio, MSE and the information gain ``1 - MSE / MSE
(prior-only)``. The prior-only baseline is the ``mean`` family's fit where that model is in the
store (``baseline: "mean"``; its fluxes still scale with each galaxy's normalisation), else the
mean of the log reference (``baseline: "population_mean"``).

Schema of ``reports/lines.json["recovery"]``::

    {
      "lines": [line, ...], "indices": ["d4000n", "hdelta_a", "ew_halpha"],
      "baseline": "mean" | "population_mean",
      "snr_edges": [0, 1, 3, 10, null],         # input S/N bins of the coverage tables (null: open)
      "input_snr_median": {line: float},          # median true flux / Cramer-Rao error at the
                                                  # input noise, per line (same for every model
                                                  # of one noise level; see "models" below)
      "models": {
        set_name: {                              # "noisy", "observed", "<family>_<dim>", ...
          "noise_sigma": float,                   # per-pixel sigma of the input (normalised)
          "input_snr_median": {line: float},
          "lines": {line: {"vs_truth": M, "vs_noise_free_fit": M}},
          "by_class": {galaxy_class: {line: {"vs_truth": M, "vs_noise_free_fit": M}}},
          "indices": {"d4000n": {"vs_noise_free": M},
                      "hdelta_a": {"vs_truth": M, "vs_noise_free": M},
                      "ew_halpha": {"vs_truth": M, "vs_noise_free": M}},
          "coverage": {                           # trained models only
            "method": "vae-posterior" | "residual" | "posterior-draws",
            "lines": {line: [C, ...]},            # one C per S/N bin
            "oh": [C, ...]},                      # 12 + log(O/H) (O3N2, PP04), bins of the
                                                  # smallest input S/N of its four lines
          "mzr": {                                # star-forming (emission_line) galaxies only
            **V,                                  # mzr_truth.vs_true: n, o3n2 M (slope of the
                                                  # set's O3N2 on the true-flux O3N2), oh_fit
                                                  # (coefficient of true O/H at fixed mass, SFR),
                                                  # oh_coverage, oh_median_error
            "n_galaxies", "fraction_measurable",  # H-alpha S/N > mzr.snr_min ...
            "measurable_by",                      # ... with calibrated (trained models) or formal errors
            "scatter": S, "truth_scatter": S}     # mzr_truth.scatter_stats: scatter about a relation
        }                                         # fitted to the true-flux O/H, SFR rho / slope
      }
    }

where ``M`` is the dict of :func:`~specdenoise.evaluation.recovery.recovery_metrics` (``n``,
``frac_valid``, ``slope_ols``, ``intercept_ols``, ``slope_robust``, ``bias_median``,
``bias_tertiles`` [3], ``spread_ratio``, ``mse``, ``info_gain``; indices and O/H linear, not
log) and ``C`` the dict of :func:`~specdenoise.evaluation.recovery.coverage_by_bin` (``snr_lo``,
``snr_hi``, ``n``, ``coverage``: fraction of truths inside the model's 16-84 % interval,
``median_width``). Coverage: the model's per-pixel sigma, calibrated on the validation split
exactly as the ``uncertainty`` stage does (same settings and seeds), propagated through the
fast fitter (a Gaussian 1-sigma interval of each flux); O/H errors propagated from the four
line errors (:func:`specdenoise.evaluation.mzr_truth.metallicities`). A family with
``calibrated_draws`` (the posterior family) is scored on the quantiles of fits to its posterior
draws instead (:mod:`specdenoise.evaluation.draw_coverage`, method ``posterior-draws``).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from specdenoise.evaluation.calibration import calibrate, raw_sigma
from specdenoise.evaluation.draw_coverage import draw_coverage_tables
from specdenoise.evaluation.indices import d4000n, ew_halpha, hdelta_a
from specdenoise.evaluation.linefit import crb_flux_error
from specdenoise.evaluation.mzr_truth import (
    MZR_LINES,
    fit_reference,
    metallicities,
    pp04_o3n2,
    scatter_stats,
    true_o3n2,
    vs_true,
)
from specdenoise.evaluation.recovery import coverage_by_bin, recovery_metrics
from specdenoise.evaluation.uncertainty import split_arrays

#: Lines scored (the paper's Table 6 lines plus H-beta, needed for O3N2).
RECOVERY_LINES = ("Halpha", "Hbeta", "OIII_5007", "NII_6583", "Hdelta", "OIII_4363", "SII_6716")
#: Input signal-to-noise bins of the coverage tables.
SNR_EDGES = (0.0, 1.0, 3.0, 10.0, float("inf"))
INDICES = ("d4000n", "hdelta_a", "ew_halpha")


def input_snr(
    true_flux: dict[str, np.ndarray], norm: np.ndarray, noise_sigma: float, edges: np.ndarray, sigma_kms: float
) -> dict[str, np.ndarray]:
    """Per line (n,): true flux over its Cramer-Rao error at per-pixel noise ``noise_sigma``
    (normalised units; times ``norm`` for 1e-17 erg/s/cm^2): the best S/N any measurement of the
    noise-added input could reach."""
    return {
        ln: np.asarray(f, float) / (crb_flux_error(noise_sigma, edges, ln, sigma_kms) * norm)
        for ln, f in true_flux.items()
    }


def measure_indices(flux: np.ndarray, fits: dict[str, dict[str, np.ndarray]], edges: np.ndarray) -> dict:
    """D4000n, HdeltaA and EW(H-alpha) (n,) of spectra ``flux`` (n, n_pix) and their line ``fits``."""
    return {
        "d4000n": d4000n(flux, edges),
        "hdelta_a": hdelta_a(flux, edges),
        "ew_halpha": ew_halpha(fits["Halpha"]["flux"], flux, edges),
    }


def _pair(value, truth, noise_free, base, log=True) -> dict[str, Any]:
    out = {"vs_noise_free_fit" if log else "vs_noise_free": recovery_metrics(noise_free, value, base, log)}
    if truth is not None:
        out["vs_truth"] = recovery_metrics(truth, value, base, log)
    return out


def score_set(
    fits: dict[str, dict[str, np.ndarray]],
    idx: dict[str, np.ndarray],
    ref: dict[str, Any],
    norm: np.ndarray,
    baseline: dict[str, Any] | None,
) -> dict[str, Any]:
    """Recovery statistics of one spectrum set (see the module docstring).

    Parameters
    ----------
    fits : dict
        The set's fast-fitter output ``{line: {"flux", "ok", ...}}`` (normalised units).
    idx : dict
        The set's :func:`measure_indices`.
    ref : dict
        ``true`` {line: (n,)} true fluxes, ``noise_free`` {line: (n,)} fitted fluxes of the
        noise-free spectra (both 1e-17 erg/s/cm^2), ``indices`` of the noise-free spectra,
        ``true_indices`` {name: (n,) or None}, ``classes`` (n,) str or None.
    baseline : dict or None
        ``{"lines": {line: (n,)}, "indices": {...}}`` of the prior-only model, or None.
    """
    flux = {ln: np.where(fits[ln]["ok"], fits[ln]["flux"] * norm, np.nan) for ln in RECOVERY_LINES}
    bl = (baseline or {}).get("lines", {})
    out: dict[str, Any] = {
        "lines": {ln: _pair(flux[ln], ref["true"][ln], ref["noise_free"][ln], bl.get(ln)) for ln in RECOVERY_LINES}
    }
    if ref.get("classes") is not None:
        out["by_class"] = {}
        for cls in sorted(set(ref["classes"])):
            m = ref["classes"] == cls
            out["by_class"][str(cls)] = {
                ln: _pair(
                    flux[ln][m],
                    ref["true"][ln][m],
                    ref["noise_free"][ln][m],
                    None if bl.get(ln) is None else bl[ln][m],
                )
                for ln in RECOVERY_LINES
            }
    bi = (baseline or {}).get("indices", {})
    out["indices"] = {
        k: _pair(idx[k], ref["true_indices"].get(k), ref["indices"][k], bi.get(k), log=False) for k in INDICES
    }
    return out


def calibrated_errors(
    model: Any, val: dict, x_test: np.ndarray, uc: Any, ivar: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray, str]:
    """The model's test prediction (n, n_pix), its calibrated per-pixel sigma (n, n_pix) and the
    method, calibrated on the validation arrays ``val`` (``x``, ``truth``, ``good``) with the
    ``uncertainty`` section ``uc`` exactly as the uncertainty stage does; ``ivar`` (n_pix,), the
    inputs' noise, reaches a noise-aware model."""
    pv, rv, method = raw_sigma(model, val["x"], uc.n_samples, uc.seed, ivar)
    scale = calibrate(pv, val["truth"], rv, val["good"], uc.window)
    pt, rt, _ = raw_sigma(model, x_test, uc.n_samples, uc.seed + 1, ivar)
    return pt, rt * scale[None, :], method


def coverage_tables(
    fits: dict[str, dict[str, np.ndarray]], true: dict[str, np.ndarray], norm: np.ndarray, snr: dict[str, np.ndarray]
) -> dict[str, Any]:
    """16-84 % coverage of line fluxes and O/H per input S/N bin, from fits with propagated errors."""
    out: dict[str, Any] = {"lines": {}}
    for ln in RECOVERY_LINES:
        f, e = fits[ln]["flux"] * norm, fits[ln]["err"] * norm
        out["lines"][ln] = coverage_by_bin(true[ln], f - e, f + e, snr[ln], SNR_EDGES)
    met = metallicities(fits, snr_min=-np.inf)
    oh_true = pp04_o3n2(true_o3n2(true))
    oh = np.where(np.isfinite(met["oh"]) & np.isfinite(met["oh_err"]), met["oh"], np.nan)
    snr_min = np.min(np.stack([snr[ln] for ln in MZR_LINES]), axis=0)
    out["oh"] = coverage_by_bin(oh_true, oh - met["oh_err"], oh + met["oh_err"], snr_min, SNR_EDGES)
    return out


def model_coverage(
    spec: tuple, fit, ref_true: dict, norm: np.ndarray, snr: dict, noise_free: dict | None = None
) -> tuple[dict, dict]:
    """The coverage block of a trained model ``spec = (model, val, x_test, uc, ivar)`` and the fits
    of its prediction with the calibrated sigma (for the MZR block): fits to its posterior draws
    for a ``calibrated_draws`` family told its inputs' noise (also against the fit to the
    noise-free spectra, ``noise_free``), else the propagated sigma."""
    model, val, x_test, uc, ivar = spec
    pred, sigma, method = calibrated_errors(model, val, x_test, uc, ivar)
    fits = fit(pred, sigma)
    if model.calibrated_draws and ivar is not None:
        cov = draw_coverage_tables(
            model,
            x_test,
            ivar,
            fit,
            ref_true,
            norm,
            snr,
            RECOVERY_LINES,
            SNR_EDGES,
            uc.n_samples,
            uc.seed + 2,
            noise_free,
        )
        return {"method": "posterior-draws", **cov}, fits
    return {"method": method, **coverage_tables(fits, ref_true, norm, snr)}, fits


def mzr_block(
    fits: dict[str, dict[str, np.ndarray]],
    ref_true: dict[str, np.ndarray],
    extras: dict[str, Any],
    snr_min: float,
    n_bins: int,
    calibrated: bool,
) -> dict[str, Any] | None:
    """O3N2 metallicities of one set's star-forming galaxies (class ``emission_line`` where the
    sample has classes) against the O3N2 of their true fluxes
    (:func:`~specdenoise.evaluation.mzr_truth.vs_true`), plus the measurable fraction (H-alpha
    S/N > ``snr_min`` with the set's errors: ``calibrated`` or formal fit residuals), the scatter
    about a reference relation fitted to the true-flux O/H of the same galaxies and its SFR
    dependence (:func:`~specdenoise.evaluation.mzr_truth.scatter_stats`); None without masses."""
    if extras.get("log_mass") is None or extras.get("log_sfr") is None:
        return None
    classes = extras.get("classes")
    sel = np.ones(len(extras["log_mass"]), bool) if classes is None else classes == "emission_line"
    met = metallicities({k: {f: np.asarray(v)[sel] for f, v in fits[k].items()} for k in MZR_LINES}, snr_min)
    o3_true = true_o3n2({k: ref_true[k][sel] for k in MZR_LINES})
    lm, ls = extras["log_mass"][sel], extras["log_sfr"][sel]
    out = vs_true(met["oh"], met["oh_err"], met["measurable"], o3_true, lm, ls)
    oh_true = pp04_o3n2(o3_true)
    ok, m = np.isfinite(oh_true), met["measurable"]
    out.update(
        n_galaxies=int(sel.sum()),
        fraction_measurable=float(m.mean()) if sel.any() else float("nan"),
        measurable_by="calibrated sigma, propagated" if calibrated else "fit residuals (formal)",
    )
    if ok.sum() >= 10:
        ref = fit_reference(lm[ok], oh_true[ok])
        out["scatter"] = scatter_stats(lm[m], met["oh"][m], ls[m], ref, n_bins)
        out["truth_scatter"] = scatter_stats(lm[ok], oh_true[ok], ls[ok], ref, n_bins)
    return out


def prior_baseline(
    sets: dict[str, np.ndarray], set_fits: dict[str, Any], norm: np.ndarray, edges: np.ndarray
) -> dict[str, Any] | None:
    """Line fluxes (1e-17 erg/s/cm^2) and indices of the prior-only ``mean`` model's set, or None
    when no ``mean_<dim>`` set is scored."""
    key = next((k for k in sets if k.split("_")[0] == "mean"), None)
    if key is None:
        return None
    mf = set_fits[key]
    return {
        "lines": {ln: np.where(mf[ln]["ok"], mf[ln]["flux"] * norm, np.nan) for ln in RECOVERY_LINES},
        "indices": measure_indices(sets[key], mf, edges),
    }


def recovery_report(
    fit,
    sets: dict[str, np.ndarray],
    truth_spectra: np.ndarray,
    ref_true: dict[str, np.ndarray],
    extras: dict[str, Any],
    norm: np.ndarray,
    noise_sigma: float,
    edges: np.ndarray,
    sigma_kms: float,
    models: dict[str, Any] | None = None,
    mzr_cfg: Any = None,
    fits: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The ``recovery`` section of ``reports/lines.json`` (schema in the module docstring).

    Parameters
    ----------
    fit : callable
        The fast fitter ``(flux, sigma=None) -> {line: {"flux", "err", "ok"}}``.
    sets : dict name -> (n, n_pix)
        Spectrum sets to score (normalised units), e.g. ``noisy`` and one per trained model.
    truth_spectra : (n, n_pix)
        The noise-free spectra of the same galaxies.
    ref_true : dict line -> (n,)
        True fluxes (1e-17 erg/s/cm^2) of at least :data:`RECOVERY_LINES`.
    extras : dict
        ``classes`` (n,) or None, ``hdelta_a`` (n,) catalogue Lick HdeltaA or None,
        ``log_mass`` / ``log_sfr`` (n,) or None (for the ``mzr`` block).
    norm : (n,)
        Normalisation factors (normalised -> 1e-17 erg/s/cm^2 per A).
    noise_sigma : float
        Per-pixel sigma of the input noise (normalised units).
    models : dict name -> (model, val arrays, x_test, uncertainty config, ivar or None), optional
        Trained models whose stated uncertainty is checked (coverage).
    mzr_cfg : MzrConfig, optional
        ``snr_min`` and ``n_mass_bins`` of the ``mzr`` block (None: no block).
    fits : dict name -> fitter output, optional
        Fits of (some of) ``sets`` already made (by the same ``fit``), so they are not repeated.
    """
    nf_fits = fit(truth_spectra)
    nf_idx = measure_indices(truth_spectra, nf_fits, edges)
    true_ew = ew_halpha(ref_true["Halpha"] / norm, truth_spectra, edges)
    ref = {
        "true": {ln: np.where(ref_true[ln] > 0, ref_true[ln], np.nan) for ln in RECOVERY_LINES},
        "noise_free": {ln: np.where(nf_fits[ln]["ok"], nf_fits[ln]["flux"] * norm, np.nan) for ln in RECOVERY_LINES},
        "indices": nf_idx,
        "true_indices": {"hdelta_a": extras.get("hdelta_a"), "ew_halpha": true_ew},
        "classes": extras.get("classes"),
    }
    snr = input_snr({ln: ref_true[ln] for ln in RECOVERY_LINES}, norm, noise_sigma, edges, sigma_kms)
    snr_med = {ln: float(np.nanmedian(v)) for ln, v in snr.items()}
    set_fits = {name: (fits or {}).get(name) or fit(x) for name, x in sets.items()}
    baseline = prior_baseline(sets, set_fits, norm, edges)
    report: dict[str, Any] = {
        "lines": list(RECOVERY_LINES),
        "indices": list(INDICES),
        "baseline": "mean" if baseline else "population_mean",
        "snr_edges": [float(e) if np.isfinite(e) else None for e in SNR_EDGES],
        "input_snr_median": snr_med,
        "models": {},
    }
    for name, x in sets.items():
        entry = score_set(set_fits[name], measure_indices(x, set_fits[name], edges), ref, norm, baseline)
        entry = {"noise_sigma": float(noise_sigma), "input_snr_median": snr_med, **entry}
        mzr_fits, calibrated = set_fits[name], False
        if models and name in models:
            entry["coverage"], mzr_fits = model_coverage(models[name], fit, ref_true, norm, snr, ref["noise_free"])
            calibrated = True
        if mzr_cfg is not None:
            entry["mzr"] = mzr_block(mzr_fits, ref_true, extras, mzr_cfg.snr_min, mzr_cfg.n_mass_bins, calibrated)
        report["models"][name] = entry
    return report


def stage_recovery(
    params: Any,
    pre: Any,
    noisy: Any,
    sample: Any,
    fit,
    sets: dict[str, np.ndarray],
    models: dict[str, Any],
    test: dict[str, np.ndarray],
    norm: np.ndarray,
    edges: np.ndarray,
    fits: dict[str, Any] | None = None,
    ivar: np.ndarray | None = None,
) -> dict[str, Any]:
    """:func:`recovery_report` for the ``lines`` stage: true fluxes, classes and Lick HdeltaA of
    the test galaxies from ``sample`` (the selected sample's table, rows in the spectra's order),
    the validation split for the coverage calibration, and the mean input noise."""
    idx = test["index"]
    ref_true = {ln: sample[f"{ln}_flux"].to_numpy()[idx] for ln in RECOVERY_LINES}
    extras = {
        "classes": sample["class"].astype(str).to_numpy()[idx] if "class" in sample.columns else None,
        "hdelta_a": sample["lick_hdelta_a"].to_numpy()[idx] if "lick_hdelta_a" in sample.columns else None,
        **{k: sample[k].to_numpy()[idx] if k in sample.columns else None for k in ("log_mass", "log_sfr")},
    }
    val, _ = split_arrays(pre, noisy, params)
    uc = params.uncertainty
    with_models = {name: (model, val, test["x"], uc, ivar) for name, model in models.items()}
    return recovery_report(
        fit,
        sets,
        np.asarray(test["truth"], dtype=np.float64),
        ref_true,
        extras,
        norm,
        float(np.mean(noisy["sigma"])),
        edges,
        params.lines.sigma_kms,
        with_models,
        params.mzr,
        fits,
    )
