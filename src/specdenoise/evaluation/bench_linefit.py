"""Is the fast line fitter good enough to be the ruler? (``specdenoise bench linefit``)

On NOISE-FREE spectra of the test split (the universe's truth, preprocessed), the fast fitter
and pPXF are each compared with the catalogue's true fluxes, for lines above ``flux_min``
(3e-17 erg/s/cm^2): median bias and scatter (standard deviation; also 1.4826 MAD) of
log10(fitted / true), the median bias per true-flux tertile, per galaxy class, and for H-alpha
per bin of its true equivalent width (weak emission on a Balmer absorption is where a continuum
basis that differs from the universe's stellar library shows). The targets: |median bias| <=
0.05 dex and scatter <= 0.07 dex for H-alpha, H-beta, [OIII] 5007 and [NII] 6583, and the fast
fitter >= 1,000x faster than pPXF.

Speed: the fast fitter is timed on all ``n`` spectra; pPXF (uncached, 2 processes) on the first
``n_time`` of them, because one pPXF fit takes seconds. pPXF's fluxes for the accuracy use the
on-disk cache of the ``lines`` stage (``cache_dir``), so a re-run only fits new spectra; the
spectra are the ``lines`` stage's own pPXF subset (same seed, same selection) for ``n`` equal to
``lines.ppxf_max_spectra``.

Schema of ``reports/bench_linefit.json``::

    {"n_spectra", "flux_min", "targets": {"abs_median_bias_dex", "scatter_dex", "speedup_min"},
     "fitters": {"fast" | "ppxf": {line: S}},
     "fast_spectra_per_s", "ppxf_spectra_per_s", "n_ppxf_timed", "speedup", "meets_speedup",
     "meets_accuracy": {line: bool}}                       # the fast fitter, target lines

with ``S`` = ``{"n", "frac_ok", "median_bias_dex", "scatter_dex", "robust_scatter_dex",
"bias_tertiles_dex" [3], "by_class": {class: {"n", "median_bias_dex", "scatter_dex"}},
"by_ew_halpha": [{"ew_lo", "ew_hi", "n", "median_bias_dex", "scatter_dex"}] (H-alpha only)}``.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

from specdenoise.data.artefacts import Spectra, load_noisy, load_sample
from specdenoise.data.preprocess import rest_grid
from specdenoise.evaluation.indices import ew_halpha
from specdenoise.evaluation.linefit import make_fast_fitter
from specdenoise.evaluation.ppxf_fit import PpxfFitter
from specdenoise.training.splits import training_data

TARGET_LINES = ("Halpha", "Hbeta", "OIII_5007", "NII_6583")
REPORT_LINES = (*TARGET_LINES, "Hdelta", "SII_6716")
MAX_BIAS_DEX, MAX_SCATTER_DEX, MIN_SPEEDUP = 0.05, 0.07, 1000.0
EW_EDGES = (0.0, 1.0, 2.0, 5.0, 10.0, float("inf"))


def _stats(d: np.ndarray) -> dict[str, Any]:
    if len(d) == 0:
        return {"n": 0, "median_bias_dex": float("nan"), "scatter_dex": float("nan")}
    return {"n": int(len(d)), "median_bias_dex": float(np.median(d)), "scatter_dex": float(np.std(d))}


def accuracy(
    fits: dict[str, dict[str, np.ndarray]],
    true: dict[str, np.ndarray],
    norm: np.ndarray,
    flux_min: float,
    classes: np.ndarray | None = None,
    ew: np.ndarray | None = None,
) -> dict[str, Any]:
    """Per line: statistics of log10(fitted x norm / true) over lines with true flux > ``flux_min``.

    Parameters
    ----------
    fits : dict
        ``{line: {"flux", "ok"}}`` (n,) in normalised units.
    true : dict line -> (n,)
        True fluxes, 1e-17 erg/s/cm^2.
    norm : (n,)
        Normalisation (normalised -> 1e-17 erg/s/cm^2 per A).
    classes : (n,) str, optional
    ew : (n,), optional
        True H-alpha equivalent width (A) for the ``by_ew_halpha`` bins.

    Returns
    -------
    dict
        line -> ``S`` of the module docstring. A failed fit (not ``ok`` or not positive) counts
        against ``frac_ok`` and is left out of the statistics.
    """
    out: dict[str, Any] = {}
    for ln in REPORT_LINES:
        t = np.asarray(true[ln], float)
        f = np.asarray(fits[ln]["flux"], float) * norm
        sel = t > flux_min
        ok = sel & np.asarray(fits[ln]["ok"], bool) & (f > 0)
        d = np.log10(f[ok] / t[ok])
        s: dict[str, Any] = {**_stats(d), "frac_ok": float(ok.sum() / max(sel.sum(), 1))}
        s["robust_scatter_dex"] = float(1.4826 * np.median(np.abs(d - np.median(d)))) if len(d) else float("nan")
        lt = np.log10(t[ok])
        if len(d) >= 3:
            q1, q2 = np.quantile(lt, [1 / 3, 2 / 3])
            s["bias_tertiles_dex"] = [float(np.median(d[p])) for p in (lt <= q1, (lt > q1) & (lt <= q2), lt > q2)]
        if classes is not None:
            c = np.asarray(classes)[ok]
            s["by_class"] = {str(k): _stats(d[c == k]) for k in sorted(set(c))}
        if ln == "Halpha" and ew is not None:
            e = np.asarray(ew, float)[ok]
            s["by_ew_halpha"] = [
                {"ew_lo": a, "ew_hi": b if np.isfinite(b) else None, **_stats(d[(e >= a) & (e < b)])}
                for a, b in zip(EW_EDGES[:-1], EW_EDGES[1:], strict=True)
            ]
        out[ln] = s
    return out


def bench_linefit(
    params: Any,
    spectra_path: str | Path,
    noisy_path: str | Path,
    sample_path: str | Path,
    templates: str | Path,
    n: int = 500,
    n_time: int = 10,
    cache_dir: str | Path | None = "data/interim/ppxf_cache",
    flux_min: float = 3.0,
) -> dict[str, Any]:
    """Fast fitter and pPXF against the true fluxes on ``n`` noise-free test spectra (see module docstring)."""
    pre = Spectra.load(spectra_path).require("truth", "split", source=str(spectra_path))
    smp = load_sample(sample_path, tuple(f"{ln}_flux" for ln in REPORT_LINES))
    _, test = training_data(pre, load_noisy(noisy_path), params)
    idx = test["index"]
    k = min(n, len(idx))
    sub = np.sort(np.random.default_rng(params.lines.seed).choice(len(idx), size=k, replace=False))
    spec, norm = np.asarray(test["truth"][sub], np.float64), np.asarray(pre.norm[idx][sub], float)
    true = {ln: smp[f"{ln}_flux"].to_numpy()[idx][sub] for ln in REPORT_LINES}
    classes = smp["class"].astype(str).to_numpy()[idx][sub] if "class" in smp.columns else None
    edges, _ = rest_grid(params.preprocess)
    ew = ew_halpha(true["Halpha"] / norm, spec, edges)
    fast = make_fast_fitter(templates, edges, params.lines.sigma_kms, params.lines.n_components)
    fast(spec[:8])  # warm-up
    t0 = time.perf_counter()
    fast_fits = fast(spec)
    fast_rate = k / (time.perf_counter() - t0)
    ppxf = PpxfFitter(templates, pre.wave, cache_dir=cache_dir, n_jobs=2)(spec)
    n_t = min(n_time, k)
    timer = PpxfFitter(templates, pre.wave, cache_dir=None, n_jobs=2)
    t0 = time.perf_counter()
    timer(spec[:n_t])
    ppxf_rate = n_t / (time.perf_counter() - t0)
    acc = {name: accuracy(f, true, norm, flux_min, classes, ew) for name, f in (("fast", fast_fits), ("ppxf", ppxf))}
    return {
        "n_spectra": int(k),
        "flux_min": flux_min,
        "targets": {"abs_median_bias_dex": MAX_BIAS_DEX, "scatter_dex": MAX_SCATTER_DEX, "speedup_min": MIN_SPEEDUP},
        "fitters": acc,
        "fast_spectra_per_s": fast_rate,
        "ppxf_spectra_per_s": ppxf_rate,
        "n_ppxf_timed": int(n_t),
        "speedup": fast_rate / ppxf_rate,
        "meets_speedup": bool(fast_rate / ppxf_rate >= MIN_SPEEDUP),
        "meets_accuracy": {
            ln: bool(
                abs(acc["fast"][ln]["median_bias_dex"]) <= MAX_BIAS_DEX
                and acc["fast"][ln]["scatter_dex"] <= MAX_SCATTER_DEX
            )
            for ln in TARGET_LINES
        },
    }
