"""The Python API: load a trained de-noiser and apply it to your own spectra.

Example (a real SDSS spectrum shipped with ppxf; any supported survey file works)::

    from specdenoise import Denoiser
    from specdenoise.survey.readers import read_spectra

    spec = read_spectra("spec-0266-51602-0001.fits")[0]
    den = Denoiser.load("models:/specdenoise-posterior@champion")
    res = den.denoise(spec.wave, spec.flux, spec.ivar, spec.z)
    res.wave, res.denoised, res.sigma, res.mask   # rest-frame A, normalised flux, 1 sigma, uncovered

The preprocessing (rest-frame grid, normalisation, ``min_coverage``) and the noise the model
was trained on travel with it: every training run writes them to ``preprocess.json`` in the
saved model directory and logs the whole directory to its MLflow run as ``specdenoise_model/``
(a model without that record is refused).

Uncertainty: a noise-aware model (the default, ``specdenoise-posterior``) is given each spectrum's
own ivar and states its own calibrated posterior spread and out-of-domain bits. For the others,
with a calibration (the ``uncertainty`` stage writes one per model, see
:mod:`specdenoise.evaluation.uncertainty`) ``sigma`` is calibrated so that 68 % of true pixels lie within
it on held-out data; without one, a VAE gives its raw posterior spread
(``calibrated=False``) and other families give NaN.
"""

from __future__ import annotations

import logging
import tempfile
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from specdenoise.config import NoiseConfig, Params, PreprocessConfig, UncertaintyConfig, resolve_params
from specdenoise.data.noise import draw_noisy, make_noise_model, noisy_ivar
from specdenoise.data.preprocess import preprocess, rest_grid
from specdenoise.errors import DataError
from specdenoise.evaluation.calibration import Calibration, uses_posterior
from specdenoise.models import store
from specdenoise.survey.model_dir import load_dir, local_provenance
from specdenoise.tracking import is_model_uri
from specdenoise.tracking.registry import download_model

log = logging.getLogger("specdenoise.denoiser")


def _noise_config(record: dict[str, Any]) -> NoiseConfig:
    """The Gaussian noise model of ``add_noise``: the training noise's own settings when it was
    Gaussian; otherwise (e.g. DESI-like noise) the default model with the training renormalisation."""
    if record.get("model", "gaussian") == "gaussian":
        return NoiseConfig.model_validate(record)
    return NoiseConfig(renormalise=record.get("renormalise", "debiased"))


@dataclass
class DenoiseResult:
    """De-noised spectra on the model's rest-frame grid.

    Arrays are (n, n_pix) for a batch, or (n_pix,) (scalars for ``norm``, ``z``) when a single
    spectrum was passed. Flux arrays are in normalised units: multiply by ``norm`` for
    rest-frame 1e-17 erg/s/cm^2/A.

    Attributes
    ----------
    wave : ndarray, shape (n_pix,)
        Rest-frame bin centres, A (air).
    input : ndarray
        Preprocessed spectrum fed to the model (noise-added when ``add_noise`` was given).
    ivar : ndarray
        Inverse variance of ``input`` (normalised units; 0 where masked).
    denoised : ndarray
        Model output.
    sigma : ndarray
        Per-pixel 1-sigma uncertainty of ``denoised`` (NaN when unavailable).
    mask : ndarray of bool
        True where the observed spectrum covers less than ``min_coverage`` of the bin (outside
        the observed range or bad pixels): input there is interpolated, output is not data.
    norm : ndarray, shape (n,)
        Normalisation factor divided out (rest-frame 1e-17 erg/s/cm^2/A).
    z : ndarray, shape (n,)
    clean : ndarray or None
        With ``add_noise``: the preprocessed spectrum before the noise was added (in the units
        of ``denoised``).
    calibrated : bool
        Whether ``sigma`` is calibrated on held-out data.
    ood : ndarray of int, shape (n,), or None
        The model's own out-of-domain bitmask (noise-aware models, e.g.
        :data:`specdenoise.models.posterior.OOD_BITS`; 0 = in domain); None for other models.
    """

    wave: np.ndarray
    input: np.ndarray
    ivar: np.ndarray
    denoised: np.ndarray
    sigma: np.ndarray
    mask: np.ndarray
    norm: np.ndarray
    z: np.ndarray
    clean: np.ndarray | None = None
    calibrated: bool = False
    ids: list[str] = field(default_factory=list)
    ood: np.ndarray | None = None

    @property
    def masked_fraction(self) -> np.ndarray:
        """Fraction of masked bins per spectrum, shape (n,) (scalar for one spectrum)."""
        return np.mean(self.mask, axis=-1)


class Denoiser:
    """A trained de-noising model plus everything needed to apply it to new spectra.

    Parameters
    ----------
    model : DenoisingModel
        Any family (:func:`specdenoise.models.load_model`).
    preprocess : PreprocessConfig
        Grid, normalisation and ``min_coverage`` of training.
    noise : NoiseConfig
        Noise model of training (``add_noise`` uses its ``model`` and ``renormalise``).
    calibration : Calibration, optional
    provenance : dict, optional
        ``model_uri``, ``model_name``, ``model_version``, ``run_id``, ``params_hash``, ...
    posterior : UncertaintyConfig, optional
        Posterior samples and seed used when there is no calibration (``uncertainty`` section).
    """

    def __init__(
        self,
        model: Any,
        preprocess: PreprocessConfig,
        noise: NoiseConfig,
        calibration: Any = None,
        provenance: dict[str, Any] | None = None,
        posterior: UncertaintyConfig | None = None,
    ) -> None:
        self.model = model
        self.posterior_cfg = posterior or UncertaintyConfig()
        self.preprocess_cfg = preprocess
        self.noise_cfg = noise
        self.calibration = calibration
        self.provenance = dict(provenance or {})
        self.edges, self.wave = rest_grid(preprocess)
        if calibration is not None:
            calibration.check_fits(model, preprocess.n_pix, self.provenance.get("calibration", "calibration"))

    # ------------------------------------------------------------------ loading
    @classmethod
    def load(
        cls,
        uri: str | Path,
        params: Params | str | Path | None = None,
        calibration: str | Path | None = None,
        root: Path | None = None,
    ) -> Denoiser:
        """Load a de-noiser.

        Parameters
        ----------
        uri : str or Path
            ``models:/<name>@<alias>``, ``models:/<name>/<version>``, ``runs:/<run_id>[/...]``
            or a saved model directory (``models/<family>_<dim>/model``).
        params : Params or path, optional
            Parameters (:func:`~specdenoise.config.resolve_params`): the MLflow store
            (``tracking``) and the posterior samples (``uncertainty``).
        calibration : path, optional
            A calibration file (``calibration/<family>_<dim>.json``); by default the model's
            own (``calibration.json`` in its run or directory, or the DVC layout's
            ``calibration/<family>_<dim>.json`` beside ``models/``).
        root : Path, optional
            Project folder of the default MLflow store (default: the current folder).

        Raises
        ------
        DataError
            Unknown URI, model, alias, version or run; a missing or corrupt model.
        """
        if not isinstance(params, Params):
            params = resolve_params(params)
        text = str(uri)
        prov: dict[str, Any] = {"model_uri": text}
        if is_model_uri(text):
            with tempfile.TemporaryDirectory(prefix="specdenoise-model-") as tmp:  # the download, read into memory
                path, cal_obj, info = download_model(text, params.tracking, root, Path(tmp))
                prov.update(info)
                model, record, _ = load_dir(path)
        else:
            path = Path(text)
            if not path.is_dir():
                raise DataError(f"model '{text}': not a models:/ or runs:/ URI nor an existing model directory")
            model, record, cal_obj = load_dir(path)
            prov.update(local_provenance(path))
        if record is None:
            raise DataError(
                f"model '{text}': no {store.PREPROCESS} (the preprocessing it was trained with); retrain it"
            )
        try:
            pre_cfg = PreprocessConfig.model_validate(record["preprocess"])
            noise_cfg = _noise_config(record["noise"])
        except Exception as exc:  # pydantic ValidationError or a missing key
            raise DataError(
                f"model '{text}': {store.PREPROCESS} is not a valid preprocessing record ({type(exc).__name__})"
            ) from None
        prov["preprocess_source"] = store.PREPROCESS
        prov["noise_model"] = record["noise"].get("model", "gaussian")
        prov.setdefault("params_hash", record.get("params_hash"))
        if calibration is not None:
            cal = Calibration.load(calibration)
            prov["calibration"] = str(calibration)
        elif cal_obj is not None:
            cal = Calibration.from_json(cal_obj[0], cal_obj[1])
            prov["calibration"] = cal_obj[1]
        else:
            cal = None
        prov.setdefault("family", model.family)
        prov.setdefault("latent_dim", model.latent_dim)
        return cls(model, pre_cfg, noise_cfg, cal, prov, params.uncertainty)

    # ------------------------------------------------------------------ applying
    def prepare(
        self, wave: Any, flux: Any, ivar: Any, z: Any, ids: Sequence[str] | None = None, source: str = "input"
    ) -> dict[str, Any]:
        """Rest-frame, resample and normalise observed spectra exactly as in training.

        Parameters
        ----------
        wave : array (k,) or sequence of arrays
            Observed-frame air wavelengths (A), strictly increasing; one grid shared by all
            spectra, or one per spectrum (then ``flux`` / ``ivar`` are sequences too).
        flux, ivar : array (k,) or (n, k), or sequences of 1-D arrays
            Flux density (1e-17 erg/s/cm^2/A) and its inverse variance (0 = bad pixel).
        z : float or array (n,)
        ids : sequence of str, optional
            Names used in error messages.

        Returns
        -------
        dict
            :func:`specdenoise.data.preprocess.preprocess` output (``flux``, ``ivar``, ``norm``,
            ``coverage``, ...) plus ``mask`` (n, n_pix) and ``single`` (bool).
        """
        ragged = isinstance(wave, (list, tuple)) and len(wave) > 0 and np.ndim(wave[0]) == 1
        if ragged:
            n = len(wave)
            if not (
                isinstance(flux, (list, tuple))
                and isinstance(ivar, (list, tuple))
                and len(flux) == n
                and len(ivar) == n
            ):
                raise DataError(f"{source}: {n} wavelength arrays need as many flux and ivar arrays")
            zs = np.broadcast_to(np.asarray(z, dtype=float), (n,))
            names = list(ids) if ids is not None else [str(i) for i in range(n)]
            parts = [self.prepare(wave[i], flux[i], ivar[i], zs[i], [names[i]], source) for i in range(n)]
            out = {
                k: np.concatenate([p[k] for p in parts])
                for k in ("flux", "ivar", "norm", "coverage", "z", "mask", "id")
            }
            out["wave"], out["single"] = parts[0]["wave"], False
            return out
        wave = np.asarray(wave, dtype=float)
        flux = np.asarray(flux, dtype=float)
        ivar = np.asarray(ivar, dtype=float)
        single = flux.ndim == 1
        flux2, ivar2 = np.atleast_2d(flux), np.atleast_2d(ivar)
        n = len(flux2)
        if wave.ndim != 1:
            raise DataError(f"{source}: wave must be 1-D (one grid for all spectra), got shape {wave.shape}")
        if np.any(wave <= 0) or not np.all(np.isfinite(wave)):
            raise DataError(f"{source}: wavelengths must be finite and positive (A)")
        zs = np.asarray(z, dtype=float).reshape(-1)
        if zs.size == 1:
            zs = np.full(n, zs[0])
        names = np.asarray(list(ids) if ids is not None else [str(i) for i in range(n)])
        obs = {"loglam": np.log10(wave), "flux": flux2, "ivar": ivar2, "z": zs, "id": names}
        pre = preprocess(obs, self.preprocess_cfg, source=source)
        pre["mask"] = pre["coverage"] < self.preprocess_cfg.min_coverage
        pre["single"] = single
        return pre

    def denoise(
        self,
        wave: Any,
        flux: Any,
        ivar: Any,
        z: Any,
        add_noise: float | None = None,
        seed: int = 0,
        ids: Sequence[str] | None = None,
        source: str = "input",
    ) -> DenoiseResult:
        """Preprocess, (optionally add noise,) de-noise and attach the uncertainty.

        Parameters
        ----------
        wave, flux, ivar, z
            As for :meth:`prepare` (one spectrum or a batch).
        add_noise : float, optional
            Add Gaussian noise of this sigma (normalised units, the paper's 0.04) to the
            preprocessed spectra and renormalise as in training; ``clean`` is then returned.
        seed : int
            Seed of the added noise.

        Returns
        -------
        DenoiseResult
        """
        pre = self.prepare(wave, flux, ivar, z, ids, source)
        res = self.finish(pre, add_noise, seed)
        if pre["single"]:
            for name in ("input", "ivar", "denoised", "sigma", "mask", "clean"):
                v = getattr(res, name)
                if v is not None:
                    setattr(res, name, v[0])
            res.norm, res.z = float(res.norm[0]), float(res.z[0])
        return res

    def finish(self, pre: dict[str, Any], add_noise: float | None = None, seed: int = 0) -> DenoiseResult:
        """De-noise spectra already prepared by :meth:`prepare` (batch form, (n, n_pix)).

        With ``add_noise`` each spectrum's noise is drawn from its own generator seeded by
        ``(seed, crc32(id))``, so a spectrum gets the same noise whatever batch it is in.
        """
        clean = pre["flux"].astype(np.float32)
        x, ivar_in = clean, pre["ivar"]
        ids = [str(i) for i in pre["id"]]
        if add_noise is not None:
            if not (add_noise > 0 and np.isfinite(add_noise)):
                raise DataError(f"add_noise: sigma must be positive, got {add_noise}")
            ncfg = self.noise_cfg.model_copy(update={"sigma": float(add_noise)})
            nm = make_noise_model(ncfg)
            x = np.empty_like(clean)
            ivar_in = np.empty_like(clean)
            for i, sid in enumerate(ids):
                rng = np.random.default_rng([int(seed), zlib.crc32(sid.encode())])
                xi, sig, renorm = draw_noisy(nm, clean[i : i + 1], self.wave, ncfg, self.preprocess_cfg.norm, rng)
                x[i] = xi[0]
                ivar_in[i] = noisy_ivar(pre["ivar"][i : i + 1], sig, renorm)[0]
        denoised, sigma, calibrated, ood = self._predict(x, ivar_in, pre["z"])
        return DenoiseResult(
            self.wave,
            x,
            ivar_in,
            denoised,
            sigma,
            pre["mask"],
            pre["norm"],
            pre["z"],
            clean if add_noise is not None else None,
            calibrated,
            ids,
            ood,
        )

    def predict(
        self, x: np.ndarray, ivar: np.ndarray | None = None, z: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray, bool]:
        """De-noise preprocessed spectra ``x`` (n, n_pix) of inverse variance ``ivar`` (normalised
        units; used by noise-aware models, which otherwise assume their training noise) at redshifts
        ``z``; return ``(denoised, sigma, calibrated)``."""
        return self._predict(x, ivar, z)[:3]

    def _predict(self, x: np.ndarray, ivar: np.ndarray | None, z: np.ndarray | None):
        """:meth:`predict` plus the model's out-of-domain bitmask (None unless noise-aware)."""
        x = np.asarray(x, dtype=np.float32)
        if x.ndim != 2 or x.shape[1] != self.preprocess_cfg.n_pix:
            raise DataError(f"input: expected (n, {self.preprocess_cfg.n_pix}) preprocessed spectra, got {x.shape}")
        if self.model.noise_aware:  # the exact posterior: its spread is calibrated in the model itself
            mean, sd, chi2 = self.model.predict(x, ivar, scale="input")  # multiplied back by the input's norm
            ood = self.model.ood_flags(x, ivar, z, chi2)
            return mean.astype(np.float32), sd.astype(np.float32), True, ood
        return (*self._predict_fixed(x), None)

    def _predict_fixed(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray, bool]:
        """A model that does not take the input's noise: its output and the calibration's spread."""
        cal = self.calibration
        if uses_posterior(self.model) and (cal is None or cal.method == "vae-posterior"):
            pc = self.posterior_cfg
            n_samples, seed = (cal.n_samples, cal.seed) if cal is not None else (pc.n_samples, pc.seed)
            pred, spread = self.model.posterior(x, n_samples, seed)
            if cal is None:
                return pred, spread, False
            return pred, spread * cal.scale[None, :].astype(np.float32), True
        pred = self.model.denoise(x)
        if cal is not None and cal.method == "residual":
            return pred, np.broadcast_to(cal.scale.astype(np.float32), pred.shape).copy(), True
        return pred, np.full_like(pred, np.nan), False
