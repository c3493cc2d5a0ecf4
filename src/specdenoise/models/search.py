"""Random hyper-parameter search (paper section 3.2) with optuna's seeded RandomSampler.

Any family with ``searchable`` set can be searched: it draws a trial's hyper-parameters with
its ``suggest_hyper`` and gives its fixed ``train.<family>`` settings as trial 0 with
``baseline_trial``. The paper's space for the dense AE / VAE (:func:`suggest`, uniform):
dropout 0 ... ``dropout_max`` in steps of ``dropout_step``; 2-4 intermediate layers; 100-1000
units in steps of 100, never wider than the previous layer. Each trial trains up to
``search.epochs`` epochs; the best trial has the lowest final validation loss. Every trial is
a nested MLflow run under the search's run.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np

from specdenoise.errors import ConfigError

if TYPE_CHECKING:  # annotations only
    from specdenoise.config import Params, SearchConfig
    from specdenoise.models.base import DenoisingModel

log = logging.getLogger("specdenoise")


def suggest(trial, cfg: SearchConfig) -> dict[str, Any]:
    """Draw ``{"dropout": float, "units": [int, ...]}`` from the paper's dense-net space.

    Parameters
    ----------
    trial : optuna.trial.Trial
    cfg : SearchConfig
        ``params.search`` (the ranges and steps).
    """
    n_drop = int(round(cfg.dropout_max / cfg.dropout_step))
    dropout = round(trial.suggest_int("dropout_step", 0, n_drop) * cfg.dropout_step, 6)
    n_layers = trial.suggest_int("n_layers", cfg.min_layers, cfg.max_layers)
    units, prev = [], cfg.max_units
    for i in range(n_layers):
        hi = max(cfg.min_units, min(prev, cfg.max_units))
        u = trial.suggest_int(f"units_{i}", cfg.min_units, hi, step=cfg.units_step)
        units.append(u)
        prev = u
    return {"dropout": dropout, "units": units}


def baseline_trial(fixed, cfg: SearchConfig) -> dict[str, int] | None:
    """Optuna parameters of the fixed ``train.<family>`` net, if it lies in the search space.

    Parameters
    ----------
    fixed : NetConfig
        The fixed net (``units``, ``dropout``).
    cfg : SearchConfig
        ``params.search``.
    """
    units = list(fixed.units)
    step = round(fixed.dropout / cfg.dropout_step)
    ok = (
        cfg.min_layers <= len(units) <= cfg.max_layers
        and abs(step * cfg.dropout_step - fixed.dropout) < 1e-9
        and fixed.dropout <= cfg.dropout_max
        and all(cfg.min_units <= u <= cfg.max_units and (u - cfg.min_units) % cfg.units_step == 0 for u in units)
        and all(b <= a for a, b in zip(units, units[1:], strict=False))
    )
    if not ok:
        return None
    return {"dropout_step": step, "n_layers": len(units), **{f"units_{i}": u for i, u in enumerate(units)}}


def random_search(
    cls: type[DenoisingModel],
    latent_dim: int,
    data,
    params: Params,
    seed: int,
    trial: Callable[[int, dict[str, Any]], contextlib.AbstractContextManager[Any]] | None = None,
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Run ``search.trials`` trials; return the best hyper-parameters and every trial's record.

    With ``search.include_baseline`` the first trial is the fixed ``train.<family>`` settings
    (when they lie in the search space), so that a short search can only improve on it; the
    other trials are drawn at random from the family's space (:meth:`suggest_hyper`).

    Parameters
    ----------
    cls : type of DenoisingModel
        The family's class (:func:`specdenoise.models.get_family`), with ``searchable`` set.
    latent_dim : int
        Bottleneck width of every trial.
    data : TrainingData
        Training and validation arrays (n, n_pix), normalised units.
    params : Params
        ``search`` (trials, epochs, space) and ``train`` (optimiser, fixed settings).
    seed : int
        Seed of the sampler; trial ``k`` trains with ``seed + k``.
    trial : callable, optional
        ``trial(number, hyper)`` returning a context manager that yields
        ``log(history, final_val_loss)``, e.g.
        :meth:`specdenoise.tracking.runs.TrainingRun.trial` (a nested MLflow run per trial);
        None logs nothing.

    Returns
    -------
    best : dict
        The hyper-parameters of the trial with the lowest final validation loss.
    records : list of dict
        ``{"trial": k, <hyper-parameters>, "final_val_loss": float}`` per trial.

    Raises
    ------
    ConfigError
        The family is not searchable.
    """
    import optuna

    family = cls.family
    if not cls.searchable:
        raise ConfigError(f"search: model family '{family}' has no hyper-parameter search space")
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    logging.getLogger("optuna").setLevel(logging.WARNING)
    cfg = params.search
    sampler = optuna.samplers.RandomSampler(seed=seed)
    study = optuna.create_study(direction="minimize", sampler=sampler)
    if cfg.include_baseline:
        base = cls.baseline_trial(params.train, cfg)
        if base is not None:
            study.enqueue_trial(base)
    records: list[dict[str, Any]] = []

    def objective(t) -> float:
        hyper = cls.suggest_hyper(t, cfg)
        model = cls(latent_dim, hyper)
        with trial(t.number, hyper) if trial is not None else contextlib.nullcontext() as log_trial:
            hist = model.fit(data, params.train, seed=seed + t.number, epochs=cfg.epochs)
            value = float(hist["val_loss"][-1]) if hist.get("val_loss") else float("inf")
            if log_trial is not None:
                log_trial(hist, value)
        records.append({"trial": t.number, **hyper, "final_val_loss": value})
        progress = f"trial {t.number + 1}/{cfg.trials}"
        log.info("search %s-%dd: %s %s -> val loss %.4g", family, latent_dim, progress, _describe(hyper), value)
        return value if np.isfinite(value) else float("inf")

    study.optimize(objective, n_trials=cfg.trials)
    best = min(records, key=lambda r: r["final_val_loss"])
    return {k: v for k, v in best.items() if k not in ("trial", "final_val_loss")}, records


def _describe(hyper: dict[str, Any]) -> str:
    """Log text of a trial: ``units [1000, 900] dropout 0.1`` for the dense nets."""
    rest = " ".join(f"{k} {v}" for k, v in hyper.items() if k != "dropout")
    return rest + (f" dropout {hyper['dropout']:.1f}" if "dropout" in hyper else "")
