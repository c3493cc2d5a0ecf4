"""Train and evaluate one model family at one latent dimension (paper sections 3-4.2).

Data: the noise-added spectra of realisation ``train.realisation`` are the inputs; the
targets are the SDSS-like observed spectra (the paper's "original"), weighted by eq. 3.
``train.val_size`` spectra of the training split are held out for validation with
``train.seed``; the test split is the fixed one from the selection stage.

Every model is evaluated on the test set against the observed target (comparable with the
paper) and against the noise-free truth (possible because the universe knows it), next to
the noise-added input itself ("gain" = input loss / model loss).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

from specdenoise.config import Params
from specdenoise.models.losses import pixel_weights, weighted_mse
from specdenoise.models import DenoisingModel, TrainingData, get_family
from specdenoise.data.noise import draw_noisy, make_noise_model


def split_indices(split: np.ndarray, params: Params) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Indices of the training, validation (``train.val_size`` drawn from the training split
    with ``train.seed``) and test spectra."""
    from specdenoise.errors import DataError

    tc = params.train
    split = np.asarray(split).astype(str)
    train_idx = np.flatnonzero(split == "train")
    if tc.val_size >= len(train_idx):
        raise DataError(f"train.val_size: {tc.val_size} is not below the {len(train_idx)} training spectra")
    perm = np.random.default_rng(tc.seed).permutation(train_idx)
    return np.sort(perm[tc.val_size :]), np.sort(perm[: tc.val_size]), np.flatnonzero(split == "test")


def training_data(pre: dict, noisy: dict, params: Params) -> tuple[TrainingData, dict[str, np.ndarray]]:
    """Split preprocessed spectra into training / validation data and test arrays."""
    from specdenoise.errors import DataError

    tc = params.train
    if tc.realisation >= noisy["noisy"].shape[0]:
        raise DataError(f"train.realisation: {tc.realisation} but only {noisy['noisy'].shape[0]} noise realisation(s) exist")
    trn, val, test_idx = split_indices(pre["split"], params)
    x = noisy["noisy"][tc.realisation].astype(np.float32)
    y = pre["flux"].astype(np.float32)
    w = pixel_weights(pre["ivar"], tc.weight_softening)
    model = make_noise_model(params.noise)
    wave = pre["wave"]
    sigma = np.asarray(noisy["sigma"], dtype=np.float64)

    def fresh(clean: np.ndarray, g: np.random.Generator) -> np.ndarray:
        return draw_noisy(model, clean, wave, params.noise, params.preprocess.norm, g)[0]

    data = TrainingData(x[trn], y[trn], w[trn], x[val], y[val], w[val], wave, sigma, noise=fresh, meta={"n_train": len(trn), "n_val": len(val), "val_index": val})
    test = {"x": x[test_idx], "y": y[test_idx], "w": w[test_idx], "truth": pre["truth"][test_idx].astype(np.float32), "index": test_idx}
    return data, test


def evaluate(model: DenoisingModel, test: dict[str, np.ndarray]) -> tuple[dict[str, float], np.ndarray]:
    """Test-set metrics and predictions.

    Metrics: ``test_loss`` (mean eq.-3 loss against the observed target), ``test_loss_truth``
    (against the noise-free truth, same weights), the same two for the noise-added input
    (``input_loss``, ``input_loss_truth``), the gains (input / model), the unweighted MSE
    against the truth, and inference spectra per second.
    """
    t0 = time.perf_counter()
    pred = model.denoise(test["x"])
    dt = time.perf_counter() - t0
    loss = weighted_mse(pred, test["y"], test["w"])
    loss_t = weighted_mse(pred, test["truth"], test["w"])
    inp = weighted_mse(test["x"], test["y"], test["w"])
    inp_t = weighted_mse(test["x"], test["truth"], test["w"])
    metrics = {
        "test_loss": float(loss.mean()),
        "test_loss_median": float(np.median(loss)),
        "test_loss_truth": float(loss_t.mean()),
        "input_loss": float(inp.mean()),
        "input_loss_truth": float(inp_t.mean()),
        "gain": float(inp.mean() / loss.mean()),
        "gain_truth": float(inp_t.mean() / loss_t.mean()),
        "mse_truth": float(np.mean((pred - test["truth"]) ** 2)),
        "inference_spectra_per_s": float(len(pred) / max(dt, 1e-9)),
    }
    return metrics, pred


def train_one(
    family: str,
    latent_dim: int,
    params: Params,
    pre: dict,
    noisy: dict,
    out_dir: Path,
    tracking: bool = True,
    root: Path | None = None,
    sample: str = "main",
    progress: bool = False,
    hyper: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Search (neural families), fit, evaluate, save and log one model; return its record.

    ``hyper`` (e.g. another model's chosen hyper-parameters) skips the search: the model is
    re-trained with that architecture, as the paper re-trains its VAE on DESI-like spectra.

    ``sample`` tags the MLflow run (``main`` for the paper's sample, ``desi`` for the DESI-like one)."""
    from specdenoise.io import save_json

    data, test = training_data(pre, noisy, params)
    cls = get_family(family)
    tc = params.train
    seed = tc.seed * 1000 + latent_dim
    trials: list[dict[str, Any]] = []
    run = None
    if tracking:
        import mlflow

        from specdenoise import tracking as trk

        exp_id = trk.setup(params.tracking, root)
        run = mlflow.start_run(experiment_id=exp_id, run_name=f"{family}-{latent_dim}d")
        mlflow.set_tags({"family": family, "latent_dim": str(latent_dim), "role": "final", "noise_model": params.noise.model if sample == "main" else sample, "sample": sample,
                         "benchmark": trk.benchmark_tag(params)})
        mlflow.log_params({"family": family, "latent_dim": latent_dim, "n_train": data.meta["n_train"], "n_val": data.meta["n_val"], **{f"train.{k}": v for k, v in tc.model_dump().items() if k not in ("ae", "vae", "families", "latent_dims")}})
        trk.log_json(trk.environment(), "environment.json")
    try:
        t0 = time.perf_counter()
        given = hyper is not None
        hyper = dict(hyper or {})
        if family in ("ae", "vae") and not given:
            fixed = getattr(tc, family)
            hyper = {"units": list(fixed.units), "dropout": fixed.dropout}
            if params.search.trials > 0:
                from specdenoise.models.search import random_search

                hyper, trials = random_search(family, latent_dim, data, params, seed=params.search.seed * 1000 + latent_dim, tracking=tracking)
        search_s = time.perf_counter() - t0
        model = cls(latent_dim, hyper)
        t1 = time.perf_counter()
        callbacks = [_mlflow_epoch_logger()] if (tracking and family in ("ae", "vae")) else []
        if progress and family in ("ae", "vae"):
            callbacks.append(_epoch_bar(f"{family}-{latent_dim}d", tc.max_epochs))
        history = model.fit(data, tc, seed=seed, callbacks=callbacks)
        fit_s = time.perf_counter() - t1
        metrics, pred = evaluate(model, test)
        metrics.update({"train_seconds": fit_s, "search_seconds": search_s, "n_parameters": model.n_parameters(), "epochs": len(history.get("loss", []))})
        if history.get("seconds_per_epoch"):
            metrics["seconds_per_epoch"] = history["seconds_per_epoch"][0]
        model_dir = out_dir / "model"
        model.save(model_dir)
        from specdenoise.survey.denoiser import training_record

        # the preprocessing (and noise) the model was trained with travels with it (Denoiser)
        save_json(model_dir / "preprocess.json", training_record(params))
        record = {"family": family, "latent_dim": latent_dim, "hyper": model.hyper, "metrics": metrics, "trials": trials, "history": history}
        if run is not None:
            import mlflow

            mlflow.log_params({f"hp.{k}": (",".join(map(str, v)) if isinstance(v, list) else v) for k, v in model.hyper.items()})
            mlflow.log_metrics(metrics)
            from specdenoise import tracking as trk

            trk.log_json(record, "record.json")
            if history.get("loss"):
                mlflow.log_figure(_history_figure(history, f"{family.upper()} {latent_dim}-D"), "loss_history.png")
            if params.tracking.log_models:
                _log_model(model, model_dir, test["x"][:4], pred[:4], params)
                # the whole saved model (VAE encoder included) + preprocess.json, for Denoiser.load
                mlflow.log_artifacts(str(model_dir), "specdenoise_model")
            record["run_id"] = run.info.run_id
        save_json(out_dir / "metrics.json", {"family": family, "latent_dim": latent_dim, **metrics, "run_id": record.get("run_id")})
        save_json(out_dir / "record.json", record)
        return record
    finally:
        if run is not None:
            import mlflow

            mlflow.end_run()


def _history_figure(history: dict[str, list[float]], title: str):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3.5))
    ax.plot(history["loss"], label="train")
    if history.get("val_loss"):
        ax.plot(history["val_loss"], ls="--", label="validation")
    ax.set(title=title, xlabel="epoch", ylabel="loss (eq. 3)", yscale="log")
    ax.legend()
    plt.close(fig)
    return fig


def _epoch_bar(desc: str, total: int):
    """A tqdm bar over epochs (stderr) showing the losses; closes when training stops early."""
    import keras
    from tqdm.auto import tqdm

    class EpochBar(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            self.bar = tqdm(total=total, desc=desc, unit="epoch", leave=False)

        def on_epoch_end(self, epoch, logs=None):
            logs = logs or {}
            self.bar.set_postfix({k: f"{logs[k]:.4g}" for k in ("loss", "val_loss") if k in logs})
            self.bar.update(1)

        def on_train_end(self, logs=None):
            self.bar.close()

    return EpochBar()


def _mlflow_epoch_logger():
    import keras

    class EpochLogger(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            import mlflow

            logs = logs or {}
            vals = {"train_loss": logs.get("loss"), "val_loss": logs.get("val_loss")}
            mlflow.log_metrics({k: float(v) for k, v in vals.items() if v is not None}, step=epoch)

    return EpochLogger()


def _log_model(model: DenoisingModel, model_dir: Path, x_example: np.ndarray, y_example: np.ndarray, params: Params) -> None:
    """Log the model with a signature and explicit pip requirements; register VAEs."""
    import mlflow
    from mlflow.models import infer_signature

    from specdenoise.tracking import pip_requirements

    signature = infer_signature(x_example.astype(np.float32), y_example.astype(np.float32))
    registered = params.tracking.registered_model if model.family == "vae" else None
    if model.family in ("ae", "vae"):
        import mlflow.keras

        mlflow.keras.log_model(
            model.model, name="model", signature=signature, pip_requirements=pip_requirements(),
            registered_model_name=registered,
        )  # fmt: skip
    else:
        import warnings

        warnings.filterwarnings("ignore", message="Add type hints to the `predict` method", category=UserWarning)
        code = Path(__file__).with_name("pyfunc_model.py")
        mlflow.pyfunc.log_model(
            name="model", python_model=str(code), artifacts={"model_dir": str(model_dir)}, signature=signature,
            input_example=x_example.astype(np.float32), pip_requirements=pip_requirements(), registered_model_name=registered,
        )  # fmt: skip
