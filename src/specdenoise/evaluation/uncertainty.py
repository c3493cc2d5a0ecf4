"""Per-pixel predictive uncertainty of de-noised spectra, calibrated on validation data.

Two methods, chosen by model family:

``vae-posterior`` (VAE)
    The encoder gives the posterior mean and log-variance of the latent code; ``n_samples``
    latent draws go through the decoder (extracted from the saved inference graph, whose
    nested ``decoder`` model is the generative half) and their per-pixel standard deviation
    is the *raw* predictive sigma. It is spectrum-specific: a spectrum the encoder is unsure
    about gets wider bands.
``residual`` (AE, PCA, Wiener, or a VAE without its encoder)
    No per-spectrum spread exists; the raw sigma is 1 and calibration turns it into the
    validation residual scale of each pixel (an honest, spectrum-independent error bar).

Calibration (:func:`calibrate`) uses the VALIDATION split, whose noise-free truth the universe
knows: for every pixel ``j`` the scale ``s_j`` is the 68.27 % quantile of
``|prediction - truth| / raw_sigma`` over the validation spectra, pooled over the
``2 * window + 1`` neighbouring pixels (so a few hundred validation spectra are enough). The
calibrated sigma is ``s_j * raw_sigma``. By construction 68.27 % of validation truth pixels lie
within 1 sigma; :func:`coverage` measures what happens on the TEST split (overall and per
wavelength region, within 1 and 2 sigma), before and after calibration.

Masked pixels (ivar = 0 in the preprocessed target, i.e. interpolated over) are left out of
both calibration and coverage.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from specdenoise.errors import DataError

#: Gaussian 1-sigma and 2-sigma probability mass.
LEVEL_1SIGMA = 0.682689492137
LEVEL_2SIGMA = 0.954499736104
#: Rest-frame wavelength regions (A) of the coverage report.
REGIONS: tuple[tuple[float, float], ...] = ((3700.0, 4500.0), (4500.0, 5500.0), (5500.0, 6500.0), (6500.0, 7900.0))


@dataclass
class Calibration:
    """Per-pixel calibration of a model's predictive sigma.

    Attributes
    ----------
    method : str
        ``vae-posterior`` or ``residual`` (see the module docstring).
    scale : ndarray, shape (n_pix,)
        Multiplies the raw sigma; normalised-flux units for ``residual`` (raw sigma = 1),
        dimensionless for ``vae-posterior``.
    n_samples, seed : int
        Posterior draws and their seed (the Denoiser reuses them, so its sigma is the
        calibrated one).
    window : int
        Half-width (pixels) of the pooling window used to fit ``scale``.
    n_val : int
        Validation spectra used.
    model : str
        What was calibrated (e.g. ``vae_4``), for provenance.
    """

    method: str
    scale: np.ndarray
    n_samples: int
    seed: int
    window: int
    n_val: int
    model: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d["scale"] = [float(v) for v in np.asarray(self.scale)]
        return d

    @classmethod
    def from_json(cls, obj: dict[str, Any], source: str = "calibration") -> "Calibration":
        try:
            scale = np.asarray(obj["scale"], dtype=float)
            cal = cls(str(obj["method"]), scale, int(obj["n_samples"]), int(obj["seed"]), int(obj["window"]),
                      int(obj["n_val"]), str(obj.get("model", "")), dict(obj.get("extra", {})))  # fmt: skip
        except (KeyError, TypeError, ValueError) as exc:
            raise DataError(f"{source}: not a calibration record ({type(exc).__name__}: {exc})") from None
        if cal.method not in ("vae-posterior", "residual"):
            raise DataError(f"{source}: method: unknown calibration method '{cal.method}'")
        if scale.ndim != 1 or not np.all(np.isfinite(scale)) or np.any(scale <= 0):
            raise DataError(f"{source}: scale: must be a finite positive 1-D array")
        return cal

    def save(self, path: str | Path) -> Path:
        from specdenoise.io import save_json

        return save_json(path, self.to_json())

    @classmethod
    def load(cls, path: str | Path) -> "Calibration":
        path = Path(path)
        try:
            obj = json.loads(path.read_text())
        except FileNotFoundError:
            raise DataError(f"{path}: file not found") from None
        except json.JSONDecodeError as exc:
            raise DataError(f"{path}: not valid JSON ({exc.msg})") from None
        return cls.from_json(obj, str(path))


def has_posterior(model: Any) -> bool:
    """True when ``model`` is a VAE whose encoder (posterior mean and log-variance) is loaded."""
    return getattr(model, "family", "") == "vae" and getattr(model, "encoder", None) is not None and getattr(model, "model", None) is not None


def _decoder(model: Any):
    try:
        return model.model.get_layer("decoder")
    except ValueError:
        raise DataError("model: the VAE inference graph has no nested 'decoder' model") from None


def posterior_predict(model: Any, x: np.ndarray, n_samples: int, seed: int, batch: int = 512) -> tuple[np.ndarray, np.ndarray]:
    """De-noised spectra and the spread of decoded VAE posterior samples.

    Parameters
    ----------
    model : VAEDenoiser
        With ``encoder`` (outputs mean and log-variance) and the inference ``model``.
    x : ndarray, shape (n, n_pix)
        Noise-added (or observed) normalised spectra.
    n_samples : int
        Latent draws per spectrum (>= 2).
    seed : int
        Seed of the draws (numpy ``default_rng``).

    Returns
    -------
    pred : ndarray, shape (n, n_pix)
        Decoder output at the posterior mean (identical to ``model.denoise``), normalised flux.
    spread : ndarray, shape (n, n_pix)
        Standard deviation over the decoded samples, normalised flux.
    """
    import keras

    if n_samples < 2:
        raise DataError(f"uncertainty.n_samples: needs at least 2 posterior samples, got {n_samples}")
    x = np.asarray(x, dtype=np.float32)
    dec = _decoder(model)
    rng = np.random.default_rng(seed)
    pred = np.empty_like(x)
    spread = np.empty_like(x)
    for a in range(0, len(x), batch):
        xb = x[a : a + batch]
        mean, log_var = (keras.ops.convert_to_numpy(t) for t in model.encoder(xb, training=False))
        pred[a : a + len(xb)] = keras.ops.convert_to_numpy(dec(mean, training=False))
        eps = rng.standard_normal((n_samples, *mean.shape)).astype(np.float32)
        z = (mean[None] + np.exp(0.5 * log_var)[None] * eps).reshape(-1, mean.shape[1])
        out = keras.ops.convert_to_numpy(dec(z, training=False)).reshape(n_samples, len(xb), -1)
        spread[a : a + len(xb)] = out.std(axis=0, ddof=1)
    return pred, spread


def raw_sigma(model: Any, x: np.ndarray, n_samples: int, seed: int) -> tuple[np.ndarray, np.ndarray, str]:
    """``(prediction, raw sigma, method)`` for spectra ``x`` (n, n_pix) of any family."""
    if has_posterior(model):
        pred, spread = posterior_predict(model, x, n_samples, seed)
        return pred, np.maximum(spread, 1e-12), "vae-posterior"
    pred = model.denoise(x)
    return pred, np.ones_like(pred), "residual"


def calibrate(pred: np.ndarray, truth: np.ndarray, raw: np.ndarray, good: np.ndarray | None = None, window: int = 5) -> np.ndarray:
    """Per-pixel scale so that 68.27 % of truth pixels fall within ``scale * raw``.

    Parameters
    ----------
    pred, truth, raw : ndarray, shape (n, n_pix)
        Prediction, noise-free truth and raw sigma (normalised flux) of validation spectra.
    good : ndarray of bool, shape (n, n_pix), optional
        Pixels to use (default all).
    window : int
        Pixels pooled on each side of every pixel.

    Returns
    -------
    ndarray, shape (n_pix,)
        The scale (positive).
    """
    r = np.abs(np.asarray(pred, float) - np.asarray(truth, float)) / np.asarray(raw, float)
    if good is not None:
        r = np.where(good, r, np.nan)
    n, n_pix = r.shape
    if n == 0:
        raise DataError("calibration: no validation spectra")
    padded = np.pad(r.astype(np.float32), ((0, 0), (window, window)), constant_values=np.nan)
    win = np.lib.stride_tricks.sliding_window_view(padded, 2 * window + 1, axis=1)  # (n, n_pix, 2w+1)
    pooled = np.moveaxis(win, 1, 0).reshape(n_pix, -1)
    scale = np.empty(n_pix)
    for a in range(0, n_pix, 64):  # bounded memory for large validation sets
        scale[a : a + 64] = np.nanquantile(pooled[a : a + 64], LEVEL_1SIGMA, axis=1)
    if not np.all(np.isfinite(scale)):
        raise DataError("calibration: some pixels have no unmasked validation data (widen uncertainty.window)")
    return np.maximum(scale, 1e-12)


def coverage(pred: np.ndarray, truth: np.ndarray, sigma: np.ndarray, wave: np.ndarray, good: np.ndarray | None = None) -> dict[str, Any]:
    """Fraction of truth pixels within 1 and 2 sigma of the prediction.

    Parameters
    ----------
    pred, truth, sigma : ndarray, shape (n, n_pix)
        Normalised flux.
    wave : ndarray, shape (n_pix,)
        Rest-frame wavelength (A), for the per-region breakdown (:data:`REGIONS`).
    good : ndarray of bool, shape (n, n_pix), optional

    Returns
    -------
    dict
        ``within_1sigma``, ``within_2sigma`` (fractions), ``median_sigma`` (normalised flux),
        ``n_pixels`` and ``regions``: a list of the same per wavelength region.
    """
    z = np.abs(np.asarray(pred, float) - np.asarray(truth, float)) / np.asarray(sigma, float)
    good = np.ones(z.shape, bool) if good is None else np.asarray(good, bool)

    def stats(sel: np.ndarray) -> dict[str, Any]:
        zz, ss = z[sel], np.asarray(sigma, float)[sel]
        if zz.size == 0:
            return {"within_1sigma": None, "within_2sigma": None, "median_sigma": None, "n_pixels": 0}
        return {"within_1sigma": float(np.mean(zz <= 1.0)), "within_2sigma": float(np.mean(zz <= 2.0)),
                "median_sigma": float(np.median(ss)), "n_pixels": int(zz.size)}  # fmt: skip

    out = stats(good)
    out["regions"] = []
    for lo, hi in REGIONS:
        cols = (wave >= lo) & (wave < hi)
        out["regions"].append({"wave_min": lo, "wave_max": hi, **stats(good & cols[None, :])})
    return out


def assess(model: Any, name: str, val: dict[str, np.ndarray], test: dict[str, np.ndarray], wave: np.ndarray, n_samples: int, seed: int, window: int) -> tuple[Calibration, dict[str, Any]]:
    """Calibrate one model on validation data and measure its test coverage.

    Parameters
    ----------
    val, test : dict
        ``x`` (noise-added input), ``truth`` (noise-free), ``good`` (unmasked pixels), all
        (n, n_pix).

    Returns
    -------
    (Calibration, dict)
        The calibration and the report entry: method, ``before`` (raw sigma, VAE only) and
        ``after`` coverage on the test split, ``validation`` coverage after calibration.
    """
    pv, rv, method = raw_sigma(model, val["x"], n_samples, seed)
    scale = calibrate(pv, val["truth"], rv, val["good"], window)
    cal = Calibration(method, scale, n_samples, seed, window, len(val["x"]), name)
    pt, rt, _ = raw_sigma(model, test["x"], n_samples, seed + 1)
    entry: dict[str, Any] = {"model": name, "family": getattr(model, "family", ""), "method": method, "n_val": len(val["x"]), "n_test": len(test["x"])}
    entry["before"] = coverage(pt, test["truth"], rt, wave, test["good"]) if method == "vae-posterior" else None
    entry["after"] = coverage(pt, test["truth"], rt * scale[None, :], wave, test["good"])
    entry["validation_after"] = {k: v for k, v in coverage(pv, val["truth"], rv * scale[None, :], wave, val["good"]).items() if k != "regions"}
    if method == "vae-posterior":
        # does the posterior spread carry per-spectrum information? rank correlation of
        # predicted sigma with the actual error, pixel by pixel over test spectra
        err = np.abs(pt - test["truth"])
        entry["sigma_error_spearman"] = _spearman(rt[test["good"]], err[test["good"]])
    return cal, entry


def _spearman(a: np.ndarray, b: np.ndarray) -> float:
    ra = np.argsort(np.argsort(a)).astype(float)
    rb = np.argsort(np.argsort(b)).astype(float)
    return float(np.corrcoef(ra, rb)[0, 1]) if len(a) > 2 else float("nan")


def split_arrays(pre: dict, noisy: dict, params: Any) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Validation and test arrays (``x``, ``truth``, ``good``) exactly as training split them."""
    from specdenoise.training.train import training_data

    data, test = training_data(pre, noisy, params)
    vi, ti = data.meta["val_index"], test["index"]
    x = noisy["noisy"][params.train.realisation]
    truth = np.asarray(pre["truth"], dtype=np.float32)
    good = np.asarray(pre["ivar"]) > 0
    val = {"x": x[vi].astype(np.float32), "truth": truth[vi], "good": good[vi]}
    tst = {"x": x[ti].astype(np.float32), "truth": truth[ti], "good": good[ti]}
    return val, tst


def run_uncertainty(params: Any, pre: dict, noisy: dict, models_dir: Path, calibration_dir: Path, tracking: bool = False) -> dict[str, Any]:
    """The ``uncertainty`` stage: calibrate every model in ``models_dir`` and measure coverage.

    Writes ``calibration_dir/<family>_<dim>.json`` for each model (and, with ``tracking``, the
    same as ``calibration.json`` in the model's MLflow run, so that ``models:/`` URIs find
    it). Returns the report (``models``: one entry per model; ``champion``-independent).
    """
    from specdenoise.models import load_model

    uc = params.uncertainty
    wave = np.asarray(pre["wave"], float)
    val, test = split_arrays(pre, noisy, params)
    entries = []
    client = None
    for mdir in sorted(Path(models_dir).glob("*/model")):
        name = mdir.parent.name
        model = load_model(mdir)
        cal, entry = assess(model, name, val, test, wave, uc.n_samples, uc.seed, uc.window)
        cal.save(Path(calibration_dir) / f"{name}.json")
        run_id = _run_id(mdir.parent)
        entry["run_id"] = run_id
        if tracking and run_id:
            if client is None:
                from mlflow import MlflowClient

                from specdenoise import tracking as trk

                trk.setup(params.tracking)
                client = MlflowClient()
            client.log_text(run_id, json.dumps(cal.to_json()), "calibration.json")
            for k in ("within_1sigma", "within_2sigma"):
                client.log_metric(run_id, f"coverage_{k}", entry["after"][k])
        entries.append(entry)
    if not entries:
        raise DataError(f"{models_dir}: no trained models (no */model)")
    return {"level_1sigma": LEVEL_1SIGMA, "level_2sigma": LEVEL_2SIGMA, "n_samples": uc.n_samples, "seed": uc.seed,
            "window": uc.window, "regions": [list(r) for r in REGIONS], "models": {e["model"]: e for e in entries}}  # fmt: skip


def _run_id(model_root: Path) -> str | None:
    path = model_root / "metrics.json"
    if not path.exists():
        return None
    try:
        return json.loads(path.read_text()).get("run_id")
    except json.JSONDecodeError:
        return None


def render_markdown(report: dict[str, Any]) -> str:
    """Coverage table: test-split fraction of truth pixels within 1 / 2 sigma."""
    out = ["# Predictive uncertainty: test-set coverage", "",
           f"Calibrated on the validation split (per-pixel 68.27 % quantile, window +-{report['window']} px); "
           f"VAE sigma from {report['n_samples']} posterior samples.", "",
           "| model | method | 1 sigma before | 1 sigma after | 2 sigma after | median sigma |", "|---|---|---:|---:|---:|---:|"]  # fmt: skip
    for name, e in report["models"].items():
        b = e["before"]["within_1sigma"] if e.get("before") else None
        a = e["after"]
        cells = [name, e["method"], "-" if b is None else f"{100 * b:.1f} %", f"{100 * a['within_1sigma']:.1f} %",
                 f"{100 * a['within_2sigma']:.1f} %", f"{a['median_sigma']:.3g}"]  # fmt: skip
        out.append("| " + " | ".join(cells) + " |")
    return "\n".join(out) + "\n"
