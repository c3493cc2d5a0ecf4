"""Evidence for the posterior family (issue 15): calibration, loss and line recovery over the S/N
range on held-out universe spectra, the paper families at sigma = 0.04, real spectra, anomalies.

Held-out spectra are fresh universe draws (stream 2 of the model's seed: disjoint from the
prior's and the calibration's draws) observed by :func:`~specdenoise.models.posterior_sim.observe_normalised`
at fixed continuum S/N per pixel with each noise shape. Line fluxes are measured with the fast
fitter (E-MILES continuum + Gaussians); the reference ("true") flux of a line is the same fitter
on the noise-free spectrum, which removes the fitter's own error (issue 13). Intervals are the
16-84 % quantiles of the fitter run on calibrated posterior draws
(:func:`~specdenoise.evaluation.draw_coverage.draw_interval`, the pipeline's rule).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

from specdenoise.config import load_params
from specdenoise.data.noise import noisy_ivar
from specdenoise.data.preprocess import rest_grid
from specdenoise.evaluation.class_separability import features, separability
from specdenoise.evaluation.coverage_chance import coverage_vs_chance, miss_sides
from specdenoise.evaluation.draw_coverage import draw_interval
from specdenoise.evaluation.library_posterior import library_by_class
from specdenoise.evaluation.linefit import make_fast_fitter
from specdenoise.evaluation.mzr_truth import true_o3n2
from specdenoise.evaluation.posterior_bench_exact import exact_by_class
from specdenoise.evaluation.posterior_real import anomaly_rates, real_spectra_chi2
from specdenoise.models import load_model
from specdenoise.models.losses import pixel_weights, weighted_mse
from specdenoise.models.posterior_calibrate import spectrum_features
from specdenoise.models.posterior_fit import line_windows
from specdenoise.models.posterior_intervals import continuum_log_snr
from specdenoise.models.posterior_noise import observe_normalised
from specdenoise.models.posterior_sim import draw_clean

SNRS = (0.5, 1.0, 3.0, 10.0, 30.0, 100.0)
SLOPE_LINES = ("Halpha", "Hbeta", "OIII_5007", "NII_6583")
LINE_PIX = (3727.0, 4861.3, 5006.8, 6562.8, 6583.5)


def line_pixels(wave: np.ndarray, half: int = 2) -> np.ndarray:
    """Boolean (P,) mask of the bins within ``half`` bins of the strong lines (:data:`LINE_PIX`)."""
    m = np.zeros(len(wave), bool)
    m[line_windows(wave, half, LINE_PIX)] = True
    return m


def _fluxes(fitter, spectra: np.ndarray, sigma: np.ndarray | None = None) -> dict[str, np.ndarray]:
    out = fitter(spectra, sigma)
    return {k: v["flux"] for k, v in out.items()} | {f"{k}_err": v["err"] for k, v in out.items()}


def tertile_coverage(ref: np.ndarray, inside: np.ndarray) -> list[float]:
    """Coverage (3,) of ``inside`` (n,) per tertile of the true value ``ref`` (n,) within the set (low,
    middle, high): ~0.68 each when the intervals follow the galaxy; lower at both ends and higher in
    the middle when they follow the population."""
    t = np.digitize(ref, np.quantile(ref, [1 / 3, 2 / 3]))
    return [float(inside[t == i].mean()) if (t == i).any() else float("nan") for i in range(3)]


def spread_check(fs: np.ndarray, ref: np.ndarray, input_err: np.ndarray) -> dict[str, float | None]:
    """How the draws' spread of a line compares with what the data give, from the line's fluxes over
    the draws ``fs`` (S, n), its truth ``ref`` (n,) and the input fit's own error ``input_err`` (n,):

    - ``sd_over_input_err``: median of the draws' sd over the input fit's error. Where the data
      fix the line (high S/N) about 1; well below 1 there, the prior claims a precision the data
      do not give;
    - ``z68``: 68th percentile of |draws' median - truth| / draws' sd; 1 for right-sized intervals,
      above 1 for too narrow ones (whatever the side they miss on)."""
    sd = np.nanstd(fs, axis=0)
    ok = np.isfinite(sd) & (sd > 0)
    good = ok & np.isfinite(input_err) & (input_err > 0)
    z = np.abs(np.nanmedian(fs[:, ok], axis=0) - ref[ok]) / sd[ok]
    return {
        "sd_over_input_err": float(np.median(sd[good] / input_err[good])) if good.any() else None,
        "z68": float(np.quantile(z, 0.68)) if ok.any() else None,
    }


def interval_factors(model, obs: dict, mean: np.ndarray) -> dict[str, np.ndarray]:
    """The model's interval factor (n,) of each line of :data:`SLOPE_LINES` and O3N2 for inputs ``obs``
    with input-scale posterior ``mean`` (n, P) (1 for a model without ``calibrated_intervals``)."""
    return model.interval_factors((*SLOPE_LINES, "O3N2"), obs["flux"], obs["ivar"], mean=mean)


def input_fits(fitter, obs: dict, mean: np.ndarray) -> dict[str, dict[str, np.ndarray]]:
    """The fast fitter on the truth (``ref``), the input with its errors (``inp``, masked pixels at
    sigma 1e3) and the posterior ``mean`` (``den``): ``{which: {line or line_err: (n,)}}``."""
    sig = np.where(obs["ivar"] > 0, 1.0 / np.sqrt(np.where(obs["ivar"] > 0, obs["ivar"], 1.0)), 1e3)
    return {
        "ref": _fluxes(fitter, obs["truth"]),
        "inp": _fluxes(fitter, obs["flux"], sig),
        "den": _fluxes(fitter, mean),
    }


def line_metrics(
    fitter, obs: dict, mean: np.ndarray, draws: np.ndarray, factors: dict | None = None, fits: dict | None = None
) -> dict[str, Any]:
    """Interval coverage of lines and O3N2 (with the sides the truth falls out on; H-alpha also per
    tertile of its true flux, the median ratio of the draws' median to the truth and
    :func:`spread_check`), and slope /
    bias for lines the input detects at S/N >= 5. ``factors`` (:func:`interval_factors`): the
    intervals are scaled by them, and ``coverage_uncalibrated`` keeps the draws' own. ``fits``:
    :func:`input_fits` of these spectra when already done."""
    fits = input_fits(fitter, obs, mean) if fits is None else fits
    ref, inp, den = fits["ref"], fits["inp"], fits["den"]
    s, n, p = draws.shape
    samp = _fluxes(fitter, draws.reshape(s * n, p))
    res: dict[str, Any] = {}
    for line in SLOPE_LINES:
        fs = samp[line].reshape(s, n)
        lo, hi = draw_interval(fs, factor=None if factors is None else factors[line])
        inside = (ref[line] >= lo) & (ref[line] <= hi)
        det = (inp[line] / np.maximum(inp[f"{line}_err"], 1e-30) >= 5) & (ref[line] > 0) & (den[line] > 0)
        entry = {
            "coverage": float(inside.mean()),
            **_uncalibrated(fs, ref[line], factors),
            "n": n,
            **miss_sides(ref[line], lo, hi),
            "n_detected": int(det.sum()),
        }
        if line == "Halpha":
            entry["coverage_tertiles"] = tertile_coverage(ref[line], inside)
            pos = ref[line] > 0
            ratio = np.nanmedian(fs, axis=0)[pos] / ref[line][pos]  # draws the fitter could not measure are NaN
            entry["median_ratio"] = float(np.nanmedian(ratio)) if np.isfinite(ratio).any() else None
            entry |= spread_check(fs, ref[line], inp[f"{line}_err"])
        if det.sum() >= 10:
            lt, ld = np.log10(ref[line][det]), np.log10(den[line][det])
            entry["slope_detected"] = float(np.polyfit(lt, ld, 1)[0]) if np.ptp(lt) > 0 else float("nan")
            entry["bias_detected_dex"] = float(np.median(ld - lt))
            li = np.log10(np.where(inp[line][det] > 0, inp[line][det], np.nan))
            fin = np.isfinite(li)
            if fin.sum() >= 10 and np.ptp(lt[fin]) > 0:  # the input's own fit, same lines: the selection's share
                entry["slope_detected_input"] = float(np.polyfit(lt[fin], li[fin], 1)[0])
        res[line] = entry
    o_ref = true_o3n2(ref)  # of the fitter's noise-free fluxes
    o_s = true_o3n2({k: samp[k].reshape(s, n) for k in SLOPE_LINES})
    lo, hi = draw_interval(o_s, factor=None if factors is None else factors["O3N2"])
    ok = np.isfinite(o_ref) & np.isfinite(lo)
    if ok.sum() >= 10:
        inside = (o_ref[ok] >= lo[ok]) & (o_ref[ok] <= hi[ok])
        raw = _uncalibrated(o_s[:, ok], o_ref[ok], factors)
        res["O3N2"] = {
            "coverage": float(inside.mean()),
            **raw,
            **miss_sides(o_ref[ok], lo[ok], hi[ok]),
            "n": int(ok.sum()),
        }
    return res


def _uncalibrated(samples: np.ndarray, ref: np.ndarray, factors: dict | None) -> dict[str, float]:
    """``coverage_uncalibrated`` of the draws' own intervals, where ``factors`` scale the reported ones."""
    if factors is None:
        return {}
    lo, hi = draw_interval(samples)
    return {"coverage_uncalibrated": float(np.mean((ref >= lo) & (ref <= hi)))}


def _pixel_metrics(obs, mean, sd, lines_mask, classes) -> dict[str, Any]:
    inside = np.abs(obs["truth"] - mean) <= sd
    good = obs["ivar"] > 0
    out = {
        "coverage": float(inside.mean()),
        "coverage_line_pixels": float(inside[:, lines_mask].mean()),
        "coverage_masked_pixels": float(inside[~good].mean()) if (~good).any() else None,
        "mse_truth": float(np.mean((mean - obs["truth"]) ** 2)),
        "mse_input": float(np.sum(((obs["flux"] - obs["truth"]) ** 2) * good) / good.sum()),
        "chi2_red_vs_data": float(np.sum((mean - obs["flux"]) ** 2 * obs["ivar"]) / good.sum()),
        "median_snr": float(np.median(obs["snr"])),
        "per_class": {},
    }
    for c in np.unique(classes):
        sel = classes == c
        if sel.sum() >= 5:
            out["per_class"][str(c)] = {
                "n": int(sel.sum()),
                "coverage": float(inside[sel].mean()),
                "coverage_line_pixels": float(inside[sel][:, lines_mask].mean()),
                "mse_truth": float(np.mean((mean[sel] - obs["truth"][sel]) ** 2)),
            }
    return out


def snr_grid(model, clean, cat, wave, fitter, shapes, rng, n_samples: int = 30, desi=None) -> dict[str, Any]:
    """Pixel and line metrics per noise shape and S/N bin; also inference spectra/s."""
    lines_mask = line_pixels(wave)
    classes = cat["class"].astype(str).to_numpy()
    z = cat["z"].to_numpy()
    out: dict[str, Any] = {}
    n_done, t_pred = 0, 0.0
    for kind in shapes:
        for snr in SNRS:
            obs = observe_normalised(clean, wave, z, np.full(len(clean), snr), kind, rng, desi=desi)
            t0 = time.perf_counter()
            mean, raw_sd, _ = model.predict(obs["flux"], obs["ivar"], calibrated=False, scale="input")
            t_pred += time.perf_counter() - t0
            n_done += len(clean)
            sd = raw_sd * model.calibration_scale(mean, obs["ivar"])
            entry = _pixel_metrics(obs, mean, sd, lines_mask, classes)
            entry["coverage_raw"] = float(np.mean(np.abs(obs["truth"] - mean) <= raw_sd))
            draws = model.sample(obs["flux"], n_samples, seed=int(snr * 10), ivar=obs["ivar"])
            entry["lines"] = line_metrics(fitter, obs, mean, draws, interval_factors(model, obs, mean))
            out[f"{kind}/snr{snr:g}"] = entry
    return {"bins": out, "spectra_per_s": n_done / max(t_pred, 1e-9)}


def class_pool(params, per_class: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Clean spectra (m, P), classes (m,) and redshifts (m,) of :func:`class_grid`'s pool: ``per_class``
    of every class among ``50 per_class`` universe draws (stream 4 of ``seed``; a class with fewer
    than ``per_class / 2`` there, e.g. the universe's very rare broad-line AGN, is left out)."""
    pool, cat = draw_clean(params.universe, params.preprocess, 50 * per_class, seed, stream=4, chunk=5000)
    classes = cat["class"].astype(str).to_numpy()
    kept = [c for c in np.unique(classes) if (classes == c).sum() >= per_class / 2]
    pick = np.concatenate([np.flatnonzero(classes == c)[:per_class] for c in kept])
    return pool[pick], classes[pick], cat["z"].to_numpy()[pick]


def class_grid(model, pool, wave, fitter, seed: int, n_samples: int, kind: str = "sky") -> dict:
    """Pixel, line-pixel, line and O3N2 coverage per galaxy class and S/N on :func:`class_pool`'s
    ``pool``: the natural mix of :func:`snr_grid` leaves the rare classes (AGN 3 %, quiescent 6 %)
    with a dozen spectra, too few to test a coverage to +-3 %; ``separability``: how well the data
    tell the classes apart per S/N (:func:`.class_separability.separability`, seed ``seed``)."""
    clean, classes, z = pool
    lines_mask = line_pixels(wave)
    rng = np.random.default_rng([seed, 5])
    n = {c: int((classes == c).sum()) for c in np.unique(classes)}
    out: dict[str, Any] = {"noise": kind, "n": n, "bins": {}, "separability": {}}
    for snr in SNRS:
        obs = observe_normalised(clean, wave, z, np.full(len(clean), snr), kind, rng)
        mean, sd, _ = model.predict(obs["flux"], obs["ivar"], scale="input")
        draws = model.sample(obs["flux"], n_samples, seed=int(snr * 10) + 7, ivar=obs["ivar"])
        row = {}
        fac = interval_factors(model, obs, mean)
        fits = input_fits(fitter, obs, mean)
        for c in np.unique(classes):
            sel = classes == c
            sub = {k: v[sel] for k, v in obs.items()}
            px = _pixel_metrics(sub, mean[sel], sd[sel], lines_mask, classes[sel])
            px.pop("per_class")
            sub_fac = {k: v[sel] for k, v in fac.items()}
            sub_fits = {w: {k: v[sel] for k, v in f.items()} for w, f in fits.items()}
            row[c] = {**px, "lines": line_metrics(fitter, sub, mean[sel], draws[:, sel], sub_fac, sub_fits)}
        out["bins"][f"{kind}/snr{snr:g}"] = row
        x = features(
            fits["inp"], fits["den"], continuum_log_snr(obs["flux"], obs["ivar"]),
            spectrum_features(mean, obs["ivar"]), SLOPE_LINES,
        )  # fmt: skip
        out["separability"][f"{kind}/snr{snr:g}"] = separability(x, classes, seed)
    return out


def prior_check(model, wave, z, fitter, n: int, seed: int, n_samples: int, kind: str = "sky") -> dict[str, Any]:
    """Coverage on ``n`` spectra drawn from the model's own prior (:meth:`sample_prior`, unit norm),
    observed with ``kind`` noise at redshifts ``z`` (n,): their posterior is the one the model
    computes, so the raw pixel sd and the draws' line intervals must hold the truth 68 % of the
    time here; what the universe bins miss beyond this is the prior's misfit of the universe, not
    the inference. Per S/N: pixel coverage raw and calibrated, and the line metrics of the draws."""
    clean = model.sample_prior(n, seed)
    clean = clean / np.linalg.norm(clean, axis=1, keepdims=True)
    rng = np.random.default_rng([seed, 6])
    out: dict[str, Any] = {"noise": kind, "n": int(n), "bins": {}}
    for snr in SNRS:
        obs = observe_normalised(clean, wave, z, np.full(n, snr), kind, rng)
        mean, raw_sd, _ = model.predict(obs["flux"], obs["ivar"], calibrated=False, scale="input")
        sd = raw_sd * model.calibration_scale(mean, obs["ivar"])
        draws = model.sample(obs["flux"], n_samples, seed=int(snr * 10) + 11, ivar=obs["ivar"])
        out["bins"][f"{kind}/snr{snr:g}"] = {
            "coverage_raw": float(np.mean(np.abs(obs["truth"] - mean) <= raw_sd)),
            "coverage": float(np.mean(np.abs(obs["truth"] - mean) <= sd)),
            "lines": line_metrics(fitter, obs, mean, draws),
        }
    return out


def paper_comparison(model, bench: Path) -> dict[str, Any]:
    """Loss vs truth at the paper's sigma = 0.04 on the pipeline's test split (realisation 0), next
    to the trained paper families in ``bench/models``; the posterior gets the noisy input's ivar and
    estimates the unit-norm clean spectrum (the truth's scale; the inputs are divided by a noisy
    norm estimate, so the input-scale estimate would carry the amplitude's error into the loss)."""
    params = load_params(bench / "params.yaml")
    with np.load(bench / "data/processed/spectra.npz", allow_pickle=False) as s:
        test = np.flatnonzero(s["split"].astype(str) == "test")
        truth, ivar_obs = s["truth"][test], s["ivar"][test]
    with np.load(bench / "data/processed/noisy.npz", allow_pickle=False) as nz:
        x, renorm, sigma = nz["noisy"][0][test], nz["renorm"][0][test], nz["sigma"]
    w = pixel_weights(ivar_obs, params.train.weight_softening)
    iv = noisy_ivar(ivar_obs, sigma, renorm)
    rows = {}
    t0 = time.perf_counter()
    pred = model.denoise(x, iv, scale="unit")  # the target is the unit-norm truth
    rows["posterior"] = {
        "loss_truth": float(np.mean(weighted_mse(pred, truth, w))),
        "seconds": time.perf_counter() - t0,
    }
    rows["posterior"]["mse_truth"] = float(np.mean((pred - truth) ** 2))
    for d in sorted((bench / "models").iterdir()):
        if not (d / "model" / "family.json").exists():
            continue
        try:
            m = load_model(d / "model")
            p = m.denoise(x)
        except Exception as exc:  # a family that cannot load here is reported, not fatal
            rows[d.name] = {"error": f"{type(exc).__name__}: {exc}"[:200]}
            continue
        rows[d.name] = {
            "loss_truth": float(np.mean(weighted_mse(p, truth, w))),
            "mse_truth": float(np.mean((p - truth) ** 2)),
        }
    rows["input"] = {
        "loss_truth": float(np.mean(weighted_mse(x, truth, w))),
        "mse_truth": float(np.mean((x - truth) ** 2)),
    }
    return {"n_test": len(test), "sigma": float(np.mean(sigma)), "models": rows}


def run_bench(
    model, params, bench: Path, n_test: int, n_samples: int, shapes, seed: int, per_class, n_exact, n_library
) -> dict[str, Any]:
    """All of the evidence as one JSON-ready dict (sizes: the ``bench posterior`` command's options)."""
    wave = rest_grid(params.preprocess)[1]
    clean, cat = draw_clean(params.universe, params.preprocess, n_test, seed, stream=2, chunk=n_test)
    tpl = bench / "data/external/emiles_ppxf826.npz"
    fitter = make_fast_fitter(tpl if tpl.exists() else None, rest_grid(params.preprocess)[0])
    desi_file = bench / "data/external/desi/noise_shape.npz"
    desi = None
    if desi_file.exists():
        with np.load(desi_file, allow_pickle=False) as d:
            desi = (d["wave"], d["shape"])
    shapes = [s for s in shapes if s != "desi" or desi is not None]
    rng = np.random.default_rng([seed, 3])
    info = model.arrays.get("fit_info", np.array([np.nan, np.nan]))
    pool = class_pool(params, per_class, seed) if per_class > 0 else None
    res = {
        "model": {"latent_dim": model.latent_dim, "hyper": model.hyper, "components": int(len(model.arrays["mu"]))},
        "training": {"n_prior": float(info[0]), "prior_cpu_minutes": float(info[1]) / 60},
        "class_mix": cat["class"].astype(str).value_counts().to_dict(),
        "universe": snr_grid(model, clean, cat, wave, fitter, shapes, rng, n_samples, desi),
        "per_class": class_grid(model, pool, wave, fitter, seed, n_samples) if pool else None,
        "exact_by_class": exact_by_class(model, pool, wave, fitter, SNRS, seed, n_exact, n_samples)
        if pool and n_exact > 0
        else None,
        "library_by_class": library_by_class(params, pool, wave, fitter, seed, n_library)
        if pool and n_library > 0
        else None,
        "prior_check": prior_check(model, wave, cat["z"].to_numpy(), fitter, n_test, seed + 6, n_samples),
        "paper_sigma_0.04": paper_comparison(model, bench),
        "real": real_spectra_chi2(model, params.preprocess, bench),
        "ood": anomaly_rates(model, clean, cat, wave, rng),
    }
    return res | {"coverage_vs_chance": coverage_summary(res)}


def coverage_summary(res: dict[str, Any]) -> dict[str, Any]:
    """:func:`~specdenoise.evaluation.coverage_chance.coverage_vs_chance` of :func:`run_bench`'s line and
    O3N2 coverage cells: all universe cells (shape x S/N x line), each line's, each class's (H-alpha and
    O3N2 of :func:`class_grid`) and those of :func:`prior_check` (where the posterior is exact, with
    the draws' own intervals); ``*_uncalibrated``: the universe and the classes with the draws' own
    intervals, where the reported ones are scaled by the model's interval factors."""
    keys = (*SLOPE_LINES, "O3N2")

    def cells(bins, names=keys, key="coverage") -> list[tuple[float, int]]:
        return [(e[key], e["n"]) for b in bins for k, e in b.items() if k in names and key in e and "n" in e]

    uni = [b["lines"] for b in res["universe"]["bins"].values()]
    rows = list(res["per_class"]["bins"].values()) if res.get("per_class") else []
    classes = res["per_class"]["n"] if rows else {}
    out: dict[str, Any] = {}
    for suffix, key in (("", "coverage"), ("_uncalibrated", "coverage_uncalibrated")):
        if not cells(uni, key=key):
            continue
        out[f"universe{suffix}"] = coverage_vs_chance(cells(uni, key=key))
        out[f"universe_per_line{suffix}"] = {k: coverage_vs_chance(cells(uni, (k,), key)) for k in keys}
        if rows:
            out[f"per_class{suffix}"] = {
                c: coverage_vs_chance(cells([r[c]["lines"] for r in rows], ("Halpha", "O3N2"), key)) for c in classes
            }
    out["prior_check"] = coverage_vs_chance(cells([b["lines"] for b in res["prior_check"]["bins"].values()]))
    return out
