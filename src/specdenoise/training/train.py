"""Train and score one model family at one latent dimension (paper sections 3-4.2).

Every model is scored on the test set against the observed target (comparable with the
paper) and against the noise-free truth (possible because the universe knows it), next to
the noise-added input itself ("gain" = input loss / model loss). What a family can do (search,
epochs, registry) is read from its class (:class:`~specdenoise.models.base.DenoisingModel`).
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from specdenoise.config import Params
from specdenoise.data.artefacts import DesiSet, NoisySet, Spectra, check_pair, load_noisy, noisy_level_path
from specdenoise.data.noise import added_ivar, at_level
from specdenoise.errors import ConfigError, DataError
from specdenoise.io import save_json
from specdenoise.models import DenoisingModel, get_family, store
from specdenoise.models.losses import weighted_mse
from specdenoise.models.search import random_search
from specdenoise.tracking.runs import TrainingRun
from specdenoise.training.splits import training_data


def model_seed(params: Params, latent_dim: int, seed_index: int = 0) -> int:
    """The seed of one training: ``train.seed * 1000 + latent_dim`` for the first seed (the paper
    model), plus ``100_000 * seed_index`` for the others."""
    return params.train.seed * 1000 + latent_dim + 100_000 * seed_index


def params_at_level(params: Params, level: float | None) -> Params:
    """``params`` with ``noise`` set to one level of ``noise.levels`` (None: the paper level)."""
    if level is None:
        return params
    return params.model_copy(update={"noise": at_level(params.noise, level)})


def test_losses(pred: np.ndarray, test: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Per-test-spectrum eq.-3 losses of the de-noised test spectra ``pred`` (n_test, n_pix) and of the
    noise-added input, against the observed target and the noise-free truth (each shape (n_test,)),
    and the test indices (``index``)."""
    return {
        "loss": weighted_mse(pred, test["y"], test["w"]),
        "loss_truth": weighted_mse(pred, test["truth"], test["w"]),
        "input_loss": weighted_mse(test["x"], test["y"], test["w"]),
        "input_loss_truth": weighted_mse(test["x"], test["truth"], test["w"]),
        "index": np.asarray(test["index"]),
    }


def test_metrics(model: DenoisingModel, test: dict[str, np.ndarray]) -> tuple[dict[str, float], np.ndarray]:
    """Test-set metrics and predictions.

    ``test["ivar"]`` (n_pix,), the inverse variance of the added noise, reaches noise-aware families.
    Metrics: ``test_loss`` (mean eq.-3 loss against the observed target), ``test_loss_truth``
    (against the noise-free truth, same weights), the same two for the noise-added input
    (``input_loss``, ``input_loss_truth``), the gains (input / model), the unweighted MSE
    against the truth, and inference spectra per second.
    """
    t0 = time.perf_counter()
    pred = model.denoise_given(test["x"], test.get("ivar"))
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


def _noise_record(noisy: NoisySet | DesiSet | dict, params: Params) -> dict[str, Any]:
    """The noise a model was trained or scored on, for its ``preprocess.json``."""
    return noisy.noise_record(params) if isinstance(noisy, (NoisySet, DesiSet)) else params.noise.model_dump()


def read_hyper(path: Path, family: str | None = None) -> dict[str, Any]:
    """The chosen hyper-parameters (``hyper``) of a trained model's ``record.json``, checked
    against ``family``'s settings (its ``train.<family>`` section) when given."""
    try:
        hyper = json.loads(path.read_bytes())["hyper"]
    except FileNotFoundError:
        raise DataError(f"{path}: file not found (train that model first)") from None
    except IsADirectoryError:
        raise DataError(f"{path}: is a folder, not a training record") from None
    except (ValueError, KeyError, TypeError):  # not JSON (binary, not UTF-8) or no 'hyper' field
        raise DataError(f"{path}: not a training record with a 'hyper' field") from None
    settings = get_family(family).settings_model if family else None
    if not isinstance(hyper, dict) or (settings is not None and not _valid(settings, hyper)):
        raise DataError(f"{path}: 'hyper' is not a valid set of {family or 'model'} hyper-parameters")
    return hyper


def _valid(model: Any, value: dict[str, Any]) -> bool:
    try:
        model.model_validate(value)
    except ValueError:  # pydantic's ValidationError
        return False
    return True


def check_latent_dim(latent_dim: int, pre: Spectra, params: Params) -> None:
    """The latent dimension must be positive and below the pixels and the training spectra."""
    n_pix = np.shape(pre["flux"])[1]
    n_fit = int(np.sum(np.asarray(pre["split"]).astype(str) == "train")) - params.train.val_size
    limit = min(n_pix - 1, n_fit)
    if n_fit > 0 and not 0 < latent_dim <= limit:
        raise ConfigError(
            f"--latent-dim: {latent_dim} is outside 1..{limit} (below the {n_pix} pixels and at most the "
            f"{n_fit} training spectra)"
        )


def train_one(
    family: str,
    latent_dim: int,
    params: Params,
    pre: Spectra | dict,
    noisy: NoisySet | dict,
    out_dir: Path,
    tracking: bool = True,
    root: Path | None = None,
    sample: str = "main",
    progress: bool = False,
    hyper: dict[str, Any] | None = None,
    seed_index: int = 0,
    level: float | None = None,
    measure: Any = None,
) -> dict[str, Any]:
    """Search (searchable families), fit, score, save and log one model into ``out_dir``; return its record.

    ``hyper`` (e.g. another model's chosen hyper-parameters) skips the search: the model is
    re-trained with that architecture, as the paper re-trains its VAE on DESI-like spectra.
    ``sample`` tags the MLflow run (``main`` for the paper's sample, ``desi`` for the DESI-like one).
    ``seed_index`` picks the training seed (:func:`model_seed`); ``level`` (None: ``noise.sigma``)
    is the noise level of ``noisy``, recorded with the model. ``measure`` (spectra -> {line: flux},
    :func:`specdenoise.evaluation.draw_coverage.interval_measure`): a ``calibrated_intervals`` family
    fits its line-interval factors with it.
    """
    params = params_at_level(params, level)
    data, test = training_data(pre, noisy, params)
    test["ivar"] = added_ivar(noisy)
    cls = get_family(family)
    if measure is not None and cls.calibrated_intervals:
        data.meta["interval_measure"] = measure
    seed = model_seed(params, latent_dim, seed_index)
    ident = {"noise_level": params.noise.sigma, "seed_index": seed_index, "seed": seed}
    with TrainingRun(
        params, family, latent_dim, sample, enabled=tracking, root=root, level=level, seed_index=seed_index
    ) as run:
        run.log_start(data.meta["n_train"], data.meta["n_val"], data=data, family_cls=cls)
        model, history, trials, times = _search_and_fit(run, family, latent_dim, params, data, hyper, seed, progress)
        metrics, pred = test_metrics(model, test)
        metrics.update({**times, "n_parameters": model.n_parameters(), "epochs": len(history.get("loss", []))})
        if history.get("seconds_per_epoch"):
            metrics["seconds_per_epoch"] = history["seconds_per_epoch"][0]
        model_dir = out_dir / store.MODEL
        model.save(model_dir)
        np.savez(out_dir / store.TEST_LOSSES, **test_losses(pred, test))
        # the preprocessing and the noise the model was trained with travel with it (Denoiser)
        save_json(model_dir / store.PREPROCESS, store.training_record(params, _noise_record(noisy, params)))
        record = {
            "family": family,
            "latent_dim": latent_dim,
            **ident,
            "hyper": model.hyper,
            "metrics": metrics,
            "trials": trials,
            "history": history,
        }
        figure = (
            _history_figure(history, f"{family.upper()} {latent_dim}-D") if history.get("loss") and run.run_id else None
        )
        run.log_result(model, model_dir, record, metrics, figure, test["x"][:4], pred[:4])
        if run.run_id:
            record["run_id"] = run.run_id
        head = {"family": family, "latent_dim": latent_dim, **ident}
        save_json(
            out_dir / store.METRICS,
            {**head, **metrics, "run_id": record.get("run_id"), "experiment_id": run.experiment_id},
        )
        save_json(out_dir / store.RECORD, record)
        return record


def _search_and_fit(
    run: TrainingRun,
    family: str,
    latent_dim: int,
    params: Params,
    data: Any,
    hyper: dict[str, Any] | None,
    seed: int,
    progress: bool,
) -> tuple[DenoisingModel, dict[str, Any], list[dict[str, Any]], dict[str, float]]:
    """Search (searchable families, unless ``hyper`` is given) and fit; returns the model, its history,
    the search trials and ``{"search_seconds", "train_seconds"}``."""
    cls, tc = get_family(family), params.train
    trials: list[dict[str, Any]] = []
    t0 = time.perf_counter()
    if hyper is None:
        hyper = cls.default_hyper(tc)
        if cls.searchable and params.search.trials > 0:
            search_seed = params.search.seed * 1000 + latent_dim
            hyper, trials = random_search(cls, latent_dim, data, params, seed=search_seed, trial=run.trial)
    search_s = time.perf_counter() - t0
    model = cls(latent_dim, dict(hyper))
    callbacks = [c for c in (run.epoch_callback(),) if c is not None] if cls.iterative else []
    if progress and cls.iterative:
        callbacks.append(_epoch_bar(f"{family}-{latent_dim}d", tc.max_epochs))
    t1 = time.perf_counter()
    history = model.fit(data, tc, seed=seed, callbacks=callbacks)
    return model, history, trials, {"train_seconds": time.perf_counter() - t1, "search_seconds": search_s}


def run(
    family: str,
    latent_dim: int,
    params: Params,
    spectra: Path,
    noisy: Path,
    out: Path | None = None,
    tracking: bool = True,
    sample: str = "main",
    progress: bool = False,
    hyper_from: Path | None = None,
    measure: Any = None,
) -> tuple[dict[str, Any], Path]:
    """The ``train`` stage: train into a hidden folder, then replace ``out`` (default
    ``models/<family>_<dim>``) atomically; returns the record and the folder (``measure``: :func:`train_one`)."""
    get_family(family)
    if latent_dim <= 0:
        raise ConfigError(f"--latent-dim: must be positive, got {latent_dim}")
    hyper = read_hyper(hyper_from, family) if hyper_from is not None else None
    pre = Spectra.load(spectra).require("truth", "split", source=str(spectra))
    nz = load_noisy(noisy)
    check_pair(pre, nz, spectra, noisy)
    check_latent_dim(latent_dim, pre, params)
    final = out or Path("models") / store.key(family, latent_dim)
    tmp = final.with_name(f".{final.name}.partial")
    store.recover(final)
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        opts = {"tracking": tracking, "sample": sample, "progress": progress, "hyper": hyper, "measure": measure}
        rec = train_one(family, latent_dim, params, pre, nz, tmp, **opts)
        store.replace(tmp, final)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return rec, final


def axis_jobs(family: str, params: Params) -> list[tuple[float | None, int]]:
    """The (level, seed index) pairs of a family's seed / noise-level axis, the paper model excluded:
    seeds 1.. ``train.seeds``-1 at the paper level and 0.. ``train.level_seeds``-1 at every other
    level. A family whose fit takes no seed (not ``seeded``: PCA, Wiener, the mean) gets seed 0 only;
    a ``noise_aware`` family is trained once: its other levels score the paper model (seed 0)."""
    tc, nc = params.train, params.noise
    cls = get_family(family)
    seeds, level_seeds = (tc.seeds, tc.level_seeds) if cls.seeded else (1, 1)
    if cls.noise_aware:
        level_seeds = 1
    jobs: list[tuple[float | None, int]] = [(None, k) for k in range(1, seeds)]
    for level in nc.all_levels:
        if float(level) != float(nc.sigma):
            jobs += [(float(level), k) for k in range(level_seeds)]
    return jobs


def run_axis(
    family: str,
    latent_dim: int,
    params: Params,
    spectra: Path,
    noisy: Path,
    levels_dir: Path,
    out: Path,
    hyper_from: Path,
    tracking: bool = True,
    progress: bool = False,
    measure: Any = None,
) -> list[dict[str, Any]]:
    """The ``train_axis`` stage: the other seeds and noise levels of one family and dimension
    (:func:`axis_jobs`), with the paper model's architecture (``hyper_from``, no search), into
    ``out`` (``models/<family>_<dim>_axis``), replaced atomically as a whole; returns the records."""
    get_family(family)
    hyper = read_hyper(hyper_from)
    pre = Spectra.load(spectra).require("truth", "split", source=str(spectra))
    tmp = out.with_name(f".{out.name}.partial")
    shutil.rmtree(tmp, ignore_errors=True)
    records = []
    try:
        tmp.mkdir(parents=True)
        for level, k in axis_jobs(family, params):
            nz = load_noisy(noisy if level is None else noisy_level_path(levels_dir, level))
            name = store.key(family, latent_dim, level, k)
            if level is not None and get_family(family).noise_aware:
                records.append(score_at_level(hyper_from.parent, params, pre, nz, tmp / name, level))
                continue
            opts = {"tracking": tracking, "progress": progress, "seed_index": k, "level": level, "measure": measure}
            records.append(train_one(family, latent_dim, params, pre, nz, tmp / name, hyper=dict(hyper), **opts))
        store.replace(tmp, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return records


def score_at_level(
    paper_dir: Path, params: Params, pre: Spectra | dict, noisy: NoisySet | dict, out_dir: Path, level: float
) -> dict[str, Any]:
    """Score a noise-aware family's paper model (``paper_dir``: its ``<family>_<dim>`` folder) at another
    noise level without re-training: the test spectra of ``noisy`` with that level's ``ivar``. Writes the
    folder layout of a trained model into ``out_dir`` (the model copied, so the folder is complete) and
    returns its record (``scored_from``: the paper model; no MLflow run)."""
    params = params_at_level(params, level)
    _, test = training_data(pre, noisy, params)
    test["ivar"] = added_ivar(noisy)
    model, _ = store.load_checked(paper_dir / store.MODEL)
    metrics, pred = test_metrics(model, test)
    metrics.update({"train_seconds": 0.0, "search_seconds": 0.0, "n_parameters": model.n_parameters(), "epochs": 0})
    shutil.copytree(paper_dir / store.MODEL, out_dir / store.MODEL)
    np.savez(out_dir / store.TEST_LOSSES, **test_losses(pred, test))
    save_json(out_dir / store.MODEL / store.PREPROCESS, store.training_record(params, _noise_record(noisy, params)))
    paper = store.read_json(paper_dir / store.RECORD) or {}
    ident = {"noise_level": params.noise.sigma, "seed_index": 0, "seed": paper.get("seed")}
    head = {"family": model.family, "latent_dim": model.latent_dim, **ident}
    record = {**head, "hyper": model.hyper, "metrics": metrics, "trials": [], "history": {}}
    record["scored_from"] = paper_dir.name
    save_json(out_dir / store.METRICS, {**head, **metrics, "run_id": None, "scored_from": paper_dir.name})
    save_json(out_dir / store.RECORD, record)
    return record


def _history_figure(history: dict[str, list[float]], title: str) -> Any:
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


def _epoch_bar(desc: str, total: int) -> Any:
    """A tqdm bar over epochs (stderr) showing the losses; closes when training stops early."""
    import keras

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
