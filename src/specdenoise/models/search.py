"""Random hyper-parameter search (paper section 3.2) with optuna's seeded RandomSampler.

Search space (uniform): dropout 0 ... ``dropout_max`` in steps of ``dropout_step``; 2-4
intermediate layers; 100-1000 units in steps of 100, never wider than the previous layer.
Each trial trains up to ``search.epochs`` epochs; the best trial has the lowest final
validation loss. Every trial is a nested MLflow run under the search's run.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from specdenoise.config import Params


log = logging.getLogger("specdenoise")


def suggest(trial, cfg) -> dict[str, Any]:
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


def baseline_trial(fixed, cfg) -> dict[str, int] | None:
    """Optuna parameters of the fixed ``train.<family>`` net, if it lies in the search space."""
    units = list(fixed.units)
    step = round(fixed.dropout / cfg.dropout_step)
    ok = (
        cfg.min_layers <= len(units) <= cfg.max_layers
        and abs(step * cfg.dropout_step - fixed.dropout) < 1e-9
        and fixed.dropout <= cfg.dropout_max
        and all(cfg.min_units <= u <= cfg.max_units and (u - cfg.min_units) % cfg.units_step == 0 for u in units)
        and all(b <= a for a, b in zip(units, units[1:]))
    )
    if not ok:
        return None
    return {"dropout_step": step, "n_layers": len(units), **{f"units_{i}": u for i, u in enumerate(units)}}


def random_search(family: str, latent_dim: int, data, params: Params, seed: int, tracking: bool = True) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Run ``search.trials`` trials; return the best hyper-parameters and every trial's record.

    With ``search.include_baseline`` the first trial is the fixed ``train.<family>`` net (when
    it lies in the search space), so that a short search can only improve on it; the other
    trials are drawn at random.
    """
    import logging

    import optuna

    from specdenoise.models import get_family

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    logging.getLogger("optuna").setLevel(logging.WARNING)
    cfg = params.search
    sampler = optuna.samplers.RandomSampler(seed=seed)
    study = optuna.create_study(direction="minimize", sampler=sampler)
    if cfg.include_baseline:
        base = baseline_trial(getattr(params.train, family), cfg)
        if base is not None:
            study.enqueue_trial(base)
    records: list[dict[str, Any]] = []

    def objective(trial):
        hyper = suggest(trial, cfg)
        model = get_family(family)(latent_dim, hyper)
        run = None
        if tracking:
            import mlflow

            run = mlflow.start_run(run_name=f"{family}-{latent_dim}d-trial{trial.number}", nested=True)
            mlflow.set_tags({"family": family, "latent_dim": str(latent_dim), "role": "search_trial"})
            mlflow.log_params({"dropout": hyper["dropout"], "n_layers": len(hyper["units"]), "units": ",".join(map(str, hyper["units"]))})
        try:
            hist = model.fit(data, params.train, seed=seed + trial.number, epochs=cfg.epochs)
            value = float(hist["val_loss"][-1]) if hist.get("val_loss") else float("inf")
            if run is not None:
                import mlflow

                for step, (lv, vv) in enumerate(zip(hist["loss"], hist["val_loss"])):
                    mlflow.log_metrics({"train_loss": lv, "val_loss": vv}, step=step)
                mlflow.log_metric("final_val_loss", value)
        finally:
            if run is not None:
                import mlflow

                mlflow.end_run()
        records.append({"trial": trial.number, **hyper, "final_val_loss": value})
        log.info("search %s-%dd: trial %d/%d units %s dropout %.1f -> val loss %.4g", family, latent_dim, trial.number + 1, cfg.trials, hyper["units"], hyper["dropout"], value)
        return value if np.isfinite(value) else float("inf")

    study.optimize(objective, n_trials=cfg.trials)
    best = min(records, key=lambda r: r["final_val_loss"])
    return {"dropout": best["dropout"], "units": best["units"]}, records
