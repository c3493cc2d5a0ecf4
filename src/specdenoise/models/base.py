"""The interface every de-noising model family implements, and the family registry.

A family is a :class:`DenoisingModel` subclass decorated with :func:`register`. What the
pipeline may do with it is declared by class attributes, never by its name:

``iterative``
    Trains by epochs and keeps a per-epoch loss history (Keras callbacks apply).
``searchable``
    Has a hyper-parameter search space (:meth:`DenoisingModel.suggest_hyper`) for
    :func:`specdenoise.models.search.random_search`.
``has_posterior``
    Draws posterior samples (:meth:`DenoisingModel.posterior`).
``calibrated_draws``
    :meth:`sample` draws whole calibrated spectra (``sample(x, n, seed, ivar=, scale="unit")``):
    line-flux and O/H intervals are the quantiles of fits to the draws, which keep the pixels'
    correlations, instead of a per-pixel sigma propagated as independent errors.
``calibrated_intervals``
    :meth:`DenoisingModel.interval_factors` widens or narrows the 16-84 % intervals of line fluxes
    and O3N2 over its draws, per continuum S/N, as fitted on a validation split when training is
    given a line measure (``TrainingData.meta["interval_measure"]``).
``registry_candidate``
    Registered in the MLflow model registry and eligible for the ``champion`` alias.
``seeded``
    Its fit depends on a seed (network initialisation, k-means, draws): ``train.seeds`` trains it
    with several seeds; a family without (PCA, Wiener, the mean) is trained once, seed sd 0.
``noise_aware``
    ``denoise`` takes the input's per-pixel ``ivar`` (:meth:`DenoisingModel.denoise_given`): the
    family is trained once and scored at every noise level with that level's noise; it registers
    as ``tracking.default_model`` (the users' default), the others as ``tracking.registered_model``.
``mlflow_flavour``
    ``"keras"`` (log :meth:`DenoisingModel.native_model` with ``mlflow.keras``) or
    ``"pyfunc"`` (log the saved directory through ``tracking/pyfunc_model.py``).
``settings_model``
    The pydantic model (a :class:`FamilySettings`) of the family's ``train.<family>`` section
    in ``params.yaml``; None: the family takes no settings. :class:`FamilySections`, the base
    of :class:`specdenoise.config.TrainConfig` (:mod:`specdenoise.models.sections`), validates
    the sections against the built-in catalogue (:mod:`specdenoise.models.catalogue`, read
    without importing the families) and the families registered since.

This module imports nothing from :mod:`specdenoise.config` (which imports it), and no family.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
from pydantic import BaseModel, ConfigDict

from specdenoise.errors import ConfigError

FAMILIES: dict[str, type[DenoisingModel]] = {}


class FamilySettings(BaseModel):
    """Base of a family's ``settings_model``: the ``train.<family>`` section of ``params.yaml``.

    Unknown keys are errors and instances are frozen, as in every section of
    :mod:`specdenoise.config`; every field needs a default (a section left out of
    ``params.yaml`` takes the defaults).
    """

    model_config = ConfigDict(extra="forbid", frozen=True, strict=False, allow_inf_nan=False)


def register(cls: type[DenoisingModel]) -> type[DenoisingModel]:
    """Class decorator: make a family available by its ``family`` name.

    The family's ``train.<family>`` section (if it has a ``settings_model``) is accepted by
    configurations validated from then on.
    """
    FAMILIES[cls.family] = cls
    return cls


def unregister(name: str) -> None:
    """Remove family ``name`` from the registry (tests registering a temporary family)."""
    FAMILIES.pop(name, None)


def unknown_family(name: str, known=None) -> str:
    """The one-line message for an unknown family ``name``, listing ``known`` (default: the registered)."""
    return f"unknown model family '{name}' (known: {', '.join(sorted(FAMILIES if known is None else known))})"


def get_family(name: str) -> type[DenoisingModel]:
    """The registered family class called ``name``; :class:`ConfigError` listing the known ones otherwise.

    Only families already imported are registered: use :func:`specdenoise.models.get_family`,
    which imports a built-in family first.
    """
    try:
        return FAMILIES[name]
    except KeyError:
        raise ConfigError(f"train.families: {unknown_family(name)}") from None


@dataclass
class TrainingData:
    """Arrays a family trains on, all (n, n_pix) float32 in normalised units.

    ``x`` are the noise-added inputs, ``y`` the targets (the SDSS-like observed spectra, the
    paper's "original"), ``w`` the eq.-3 weights of the targets; ``*_val`` the validation
    split. ``noise`` draws a fresh noise-added version of ``y`` (for ``train.fresh_noise``),
    ``noise_sigma`` is the per-pixel sigma of the added noise (for the Wiener filter).
    """

    x: np.ndarray
    y: np.ndarray
    w: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    w_val: np.ndarray
    wave: np.ndarray
    noise_sigma: np.ndarray
    noise: Any = None
    meta: dict[str, Any] = field(default_factory=dict)


class DenoisingModel(ABC):
    """A de-noiser: ``fit`` on :class:`TrainingData`, ``denoise`` (n, n_pix) -> (n, n_pix).

    ``save`` writes a directory with ``family.json`` plus the family's own files (NumPy
    ``.npz`` or Keras ``.keras``; never pickles); :func:`specdenoise.models.loading.load_model` reads it back.

    Parameters
    ----------
    latent_dim : int
        Bottleneck width or rank.
    hyper : dict, optional
        Family hyper-parameters (e.g. ``{"units": [1000, 900], "dropout": 0.1}``); see
        :meth:`default_hyper`.
    """

    family: ClassVar[str]
    #: True when ``latent_dim`` is meaningful (a bottleneck or a rank)
    has_latent: ClassVar[bool] = True
    #: trains by epochs and keeps a per-epoch loss history (``history["loss"]``, ``["val_loss"]``)
    iterative: ClassVar[bool] = False
    #: has a hyper-parameter search space (:meth:`suggest_hyper`) for models/search.py
    searchable: ClassVar[bool] = False
    #: can draw posterior samples (:meth:`posterior`)
    has_posterior: ClassVar[bool] = False
    #: ``sample`` draws whole spectra whose line / O/H intervals hold the truth (``bench posterior``)
    calibrated_draws: ClassVar[bool] = False
    #: :meth:`interval_factors` scales the line-flux / O3N2 intervals of its draws (fitted in training)
    calibrated_intervals: ClassVar[bool] = False
    #: registered in the MLflow model registry, eligible for the ``champion`` alias
    registry_candidate: ClassVar[bool] = False
    #: the fit depends on its seed (``train.seeds`` trains several); False: deterministic fit
    seeded: ClassVar[bool] = False
    #: ``denoise`` takes the input's per-pixel ``ivar``; trained once, scored at every noise level
    noise_aware: ClassVar[bool] = False
    #: how MLflow logs it: "keras" (:meth:`native_model`) or "pyfunc" (the saved directory)
    mlflow_flavour: ClassVar[str] = "pyfunc"
    #: pydantic model of the ``train.<family>`` section of params.yaml (None: no settings)
    settings_model: ClassVar[type[BaseModel] | None] = None

    def __init__(self, latent_dim: int, hyper: dict[str, Any] | None = None) -> None:
        self.latent_dim = int(latent_dim)
        self.hyper = dict(hyper or {})
        self.history: dict[str, list[float]] = {}

    @classmethod
    def default_hyper(cls, train_cfg: Any) -> dict[str, Any]:
        """Hyper-parameters from the family's ``train.<family>`` section (used without a search).

        Parameters
        ----------
        train_cfg : TrainConfig
            ``params.train``.

        Returns
        -------
        dict
            The section's fields (``model_dump``), e.g. ``{"units": [1000, 900], "dropout": 0.1}``
            for the AE and VAE; ``{}`` for a family without settings.
        """
        settings = train_cfg.settings(cls.family)
        return {} if settings is None else settings.model_dump()

    @classmethod
    def suggest_hyper(cls, trial: Any, search_cfg: Any) -> dict[str, Any]:
        """Draw one trial's hyper-parameters from the family's search space (``searchable`` only).

        Parameters
        ----------
        trial : optuna.trial.Trial
        search_cfg : SearchConfig
            ``params.search``.
        """
        raise NotImplementedError(
            f"model family '{cls.family}' has no hyper-parameter search space (searchable is False)"
        )

    @classmethod
    def baseline_trial(cls, train_cfg: Any, search_cfg: Any) -> dict[str, Any] | None:
        """Optuna parameters reproducing :meth:`default_hyper` as a trial, or None if it lies
        outside the search space (``search.include_baseline``)."""
        return None

    @abstractmethod
    def fit(
        self, data: TrainingData, cfg: Any, seed: int, callbacks: list | None = None, epochs: int | None = None
    ) -> dict[str, list[float]]:
        """Train.

        Parameters
        ----------
        data : TrainingData
            Arrays (n, n_pix) in normalised units.
        cfg : TrainConfig
            ``params.train`` (optimiser, schedule, ...).
        seed : int
            Seed of every random choice of the fit.
        callbacks : list, optional
            Keras callbacks (``iterative`` families only; others ignore them).
        epochs : int, optional
            Epoch limit instead of ``cfg.max_epochs`` (search trials); closed-form families ignore it.

        Returns
        -------
        dict
            The per-epoch history (``{}`` for closed-form families).
        """

    @abstractmethod
    def denoise(self, x: np.ndarray) -> np.ndarray:
        """De-noise spectra (n, n_pix) in normalised units; returns (n, n_pix) float32."""

    def denoise_given(self, x: np.ndarray, ivar: np.ndarray | None = None) -> np.ndarray:
        """De-noise spectra whose noise is known: ``ivar`` (n, n_pix) or (n_pix,), inverse variance in
        normalised units (0 = masked). A ``noise_aware`` family uses it; the others ignore it."""
        if self.noise_aware and ivar is not None:
            return self.denoise(x, ivar=np.broadcast_to(ivar, np.shape(x)))  # type: ignore[call-arg]
        return self.denoise(x)

    @classmethod
    def registered_name(cls, tracking: Any) -> str | None:
        """The MLflow registered model this family's paper-level versions join (``tracking``:
        :class:`~specdenoise.config.TrackingConfig`); None when it is not a registry candidate."""
        if not cls.registry_candidate:
            return None
        return tracking.default_model if cls.noise_aware else tracking.registered_model

    def posterior_ready(self) -> bool:
        """True when :meth:`posterior` can run on this instance (``has_posterior`` and, for a
        loaded model, everything it needs was saved)."""
        return self.has_posterior

    def interval_factors(
        self, names, x: np.ndarray, ivar: np.ndarray, scale: str = "input", mean: np.ndarray | None = None
    ) -> dict[str, np.ndarray]:
        """Factor (n,) per quantity of ``names`` scaling the 16-84 % interval over the draws of inputs
        ``x`` (n, P) about their median (``calibrated_intervals`` families override it; ``mean``, the
        input-scale :meth:`predict` mean (n, P) where the caller has it); here 1."""
        return {q: np.ones(len(x)) for q in names}

    def posterior(self, x: np.ndarray, n_samples: int, seed: int, batch: int = 512) -> tuple[np.ndarray, np.ndarray]:
        """De-noised spectra and the spread of decoded posterior samples (``has_posterior`` only).

        Parameters
        ----------
        x : ndarray, shape (n, n_pix)
            Noise-added (or observed) normalised spectra.
        n_samples : int
            Latent draws per spectrum (>= 2).
        seed : int
            Seed of the draws.
        batch : int
            Spectra per batch (the draws depend on it; keep the default for reproducible numbers).

        Returns
        -------
        pred : ndarray, shape (n, n_pix)
            The de-noised spectra (as :meth:`denoise`), normalised flux.
        spread : ndarray, shape (n, n_pix)
            Standard deviation over the decoded samples, normalised flux.
        """
        raise NotImplementedError(f"model family '{self.family}' draws no posterior samples (has_posterior is False)")

    def native_model(self) -> Any:
        """The object ``mlflow.<mlflow_flavour>.log_model`` takes (the Keras inference model for
        ``"keras"``); None for ``"pyfunc"``, which logs the saved directory instead."""
        return None

    @abstractmethod
    def _save_files(self, path: Path) -> None: ...

    @classmethod
    @abstractmethod
    def _load_files(cls, path: Path, latent_dim: int, hyper: dict[str, Any]) -> DenoisingModel: ...

    def input_size(self) -> int | None:
        """Pixels per spectrum the fitted or loaded model takes (None when not known)."""
        return None

    def n_parameters(self) -> int:
        """Number of fitted parameters (0 when not counted)."""
        return 0

    def save(self, path: str | Path) -> Path:
        """Write the model to directory ``path`` (``family.json`` plus the family's files)."""
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        self._save_files(path)
        meta = {"family": self.family, "latent_dim": self.latent_dim, "hyper": self.hyper, "history": self.history}
        (path / "family.json").write_text(json.dumps(meta, indent=2, sort_keys=True))
        return path
