"""Per-pixel predictive uncertainty of de-noised spectra and its calibration on held-out data.

Two methods, chosen by what the model can do (:attr:`DenoisingModel.has_posterior`):

``vae-posterior`` (a family with a posterior, e.g. the VAE)
    ``n_samples`` latent draws from the encoder's posterior go through the decoder
    (:meth:`DenoisingModel.posterior`); their per-pixel standard deviation is the *raw*
    predictive sigma. It is spectrum-specific.
``residual`` (every other family, or a posterior family without its encoder)
    No per-spectrum spread exists; the raw sigma is 1 and calibration turns it into the
    validation residual scale of each pixel (an honest, spectrum-independent error bar).

Calibration (:func:`calibrate`) uses the VALIDATION split, whose noise-free truth the universe
knows: for every pixel ``j`` the scale ``s_j`` is the 68.27 % quantile of
``|prediction - truth| / raw_sigma`` over the validation spectra, pooled over the
``2 * window + 1`` neighbouring pixels. The calibrated sigma is ``s_j * raw_sigma``;
:func:`coverage` measures the fraction of truth pixels within 1 and 2 sigma.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from specdenoise.errors import DataError, ModelError
from specdenoise.io import load_json, save_json

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
    def from_json(cls, obj: dict[str, Any], source: str = "calibration") -> Calibration:
        try:
            scale = np.asarray(obj["scale"], dtype=float)
            cal = cls(
                str(obj["method"]),
                scale,
                int(obj["n_samples"]),
                int(obj["seed"]),
                int(obj["window"]),
                int(obj["n_val"]),
                str(obj.get("model", "")),
                dict(obj.get("extra", {})),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise DataError(f"{source}: not a calibration record ({type(exc).__name__}: {exc})") from None
        if cal.method not in ("vae-posterior", "residual"):
            raise DataError(f"{source}: method: unknown calibration method '{cal.method}'")
        if scale.ndim != 1 or not np.all(np.isfinite(scale)) or np.any(scale <= 0):
            raise DataError(f"{source}: scale: must be a finite positive 1-D array")
        return cal

    def check_fits(self, model: Any, n_pix: int, source: str = "calibration") -> None:
        """Raise a :class:`ModelError` naming ``source`` and both models unless this calibration is of
        ``model`` (same pixels, a posterior method only for a model that draws posterior samples,
        and the recorded model name ``<family>_<dim>`` when there is one)."""
        name = f"{getattr(model, 'family', '?')}_{getattr(model, 'latent_dim', '?')}"
        of = f"calibration of {self.model or 'an unnamed model'}"
        if len(self.scale) != n_pix:
            raise ModelError(f"{source}: {of} has {len(self.scale)} pixels but the model {name} takes {n_pix}")
        if self.method == "vae-posterior" and not uses_posterior(model):
            raise ModelError(f"{source}: {of} scales posterior samples, which the model {name} does not draw")
        if self.model and self.model != name:
            raise ModelError(f"{source}: {of} does not apply to the model {name}")

    def save(self, path: str | Path) -> Path:
        return save_json(path, self.to_json())

    @classmethod
    def load(cls, path: str | Path) -> Calibration:
        return cls.from_json(load_json(path), str(path))


def uses_posterior(model: Any) -> bool:
    """True when ``model`` can draw posterior samples now (its family has a posterior and the
    parts it samples with are loaded); otherwise the residual method applies."""
    return bool(type(model).has_posterior and model.posterior_ready())


def raw_sigma(
    model: Any, x: np.ndarray, n_samples: int, seed: int, ivar: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray, str]:
    """``(prediction, raw sigma, method)`` for spectra ``x`` (n, n_pix) of any family; ``ivar``
    (the inputs' noise, (n_pix,) or (n, n_pix)) reaches a noise-aware model."""
    if uses_posterior(model):
        if model.noise_aware and ivar is not None:
            pred, spread = model.posterior(x, n_samples, seed, ivar=np.broadcast_to(ivar, np.shape(x)))
        else:
            pred, spread = model.posterior(x, n_samples, seed)
        return pred, np.maximum(spread, 1e-12), "vae-posterior"
    pred = model.denoise_given(x, ivar)
    return pred, np.ones_like(pred), "residual"


def calibrate(
    pred: np.ndarray, truth: np.ndarray, raw: np.ndarray, good: np.ndarray | None = None, window: int = 5
) -> np.ndarray:
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


def coverage(
    pred: np.ndarray, truth: np.ndarray, sigma: np.ndarray, wave: np.ndarray, good: np.ndarray | None = None
) -> dict[str, Any]:
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
        return {
            "within_1sigma": float(np.mean(zz <= 1.0)),
            "within_2sigma": float(np.mean(zz <= 2.0)),
            "median_sigma": float(np.median(ss)),
            "n_pixels": int(zz.size),
        }

    out = stats(good)
    out["regions"] = []
    for lo, hi in REGIONS:
        cols = (wave >= lo) & (wave < hi)
        out["regions"].append({"wave_min": lo, "wave_max": hi, **stats(good & cols[None, :])})
    return out
