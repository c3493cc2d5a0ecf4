"""MLflow runs of the pipeline: one final run per trained model (with nested search trials),
one run per evaluation stage, and metrics or files added to earlier runs by later stages."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from specdenoise.config import Params
from specdenoise.io import kill_point, pid_alive
from specdenoise.tracking import benchmark_tag, environment, pip_requirements, setup

#: Artifact folder holding the whole saved model (VAE encoder and preprocess.json included).
MODEL_ARTIFACT = "specdenoise_model"
#: Calibration file name in a run's artifacts (and in a model folder).
CALIBRATION = "calibration.json"
#: Tags naming the process that started a run (see :func:`mark_killed_runs`).
PID_TAG, HOST_TAG = "pid", "host"

log = logging.getLogger(__name__)


def log_json(obj: Any, name: str) -> None:
    """Log ``obj`` as a JSON text artifact of the active run."""
    import mlflow

    mlflow.log_text(json.dumps(obj, indent=2, sort_keys=True, default=str), name)


def owner_tags() -> dict[str, str]:
    """``pid`` and ``host`` of this process, tagged on every run so that a later one can tell a
    killed run (still RUNNING, its process gone) from a live one."""
    return {PID_TAG: str(os.getpid()), HOST_TAG: socket.gethostname()}


def mark_killed_runs(experiment_id: str) -> list[str]:
    """Mark KILLED the runs of ``experiment_id`` still RUNNING whose process (``pid`` tag, this
    host) is gone (a killed training); log a line for each and return their ids."""
    from mlflow import MlflowClient

    client, host, killed = MlflowClient(), socket.gethostname(), []
    for run in client.search_runs([experiment_id], "attributes.status = 'RUNNING'", max_results=1000):
        tags = run.data.tags
        pid = tags.get(PID_TAG, "")
        if tags.get(HOST_TAG) != host or not pid.isdigit() or pid_alive(int(pid)):
            continue
        client.set_terminated(run.info.run_id, status="KILLED")
        killed.append(run.info.run_id)
        log.warning(
            "MLflow run %s (%s) was still RUNNING but its process %s is gone: marked KILLED",
            run.info.run_id,
            tags.get("mlflow.runName", "?"),
            pid,
        )
    return killed


class TrainingRun:
    """The final MLflow run of one trained model (``role: final``); a no-op when disabled.

    Use as a context manager; :meth:`trial` opens a nested run per search trial.
    """

    def __init__(
        self,
        params: Params,
        family: str,
        latent_dim: int,
        sample: str,
        enabled: bool = True,
        root: Path | None = None,
        level: float | None = None,
        seed_index: int = 0,
    ):
        self.params, self.family, self.latent_dim, self.sample = params, family, latent_dim, sample
        self.enabled, self.root = enabled, root
        self.level, self.seed_index = level, seed_index
        self.run = None

    @property
    def run_id(self) -> str | None:
        return self.run.info.run_id if self.run is not None else None

    @property
    def experiment_id(self) -> str | None:
        return self.run.info.experiment_id if self.run is not None else None

    @property
    def run_name(self) -> str:
        """Unique per model: ``vae-6d``, ``vae-6d-s1``, ``vae-6d-n0.01-s0``, ``vae-6d-desi``."""
        name = f"{self.family}-{self.latent_dim}d"
        if self.level is not None:
            name += f"-n{self.level:g}-s{self.seed_index}"
        elif self.seed_index:
            name += f"-s{self.seed_index}"
        return name if self.sample == "main" else f"{name}-{self.sample}"

    def __enter__(self) -> TrainingRun:
        if not self.enabled:
            return self
        import mlflow

        exp_id = setup(self.params.tracking, self.root)
        mark_killed_runs(exp_id)
        self.run = mlflow.start_run(experiment_id=exp_id, run_name=self.run_name)
        noise_tag = self.params.noise.model if self.sample == "main" else self.sample
        mlflow.set_tags(
            {
                "family": self.family,
                "latent_dim": str(self.latent_dim),
                "role": "final",
                "noise_model": noise_tag,
                "noise_level": f"{self.params.noise.sigma:g}",
                "seed_index": str(self.seed_index),
                "sample": self.sample,
                "benchmark": benchmark_tag(self.params),
                **owner_tags(),
                **git_tags(),
            }
        )
        log_json(environment(), "environment.json")
        kill_point("training-run-started")
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.run is not None:
            import mlflow

            mlflow.end_run()

    def log_start(self, n_train: int, n_val: int, data: Any = None, family_cls: Any = None) -> None:
        """Parameters known before training (sizes, the noise level and the ``train`` settings that
        apply to this family, ``family_cls``: :func:`family_params`) and, with ``data`` (a
        :class:`~specdenoise.models.base.TrainingData`), the training inputs as an MLflow dataset."""
        if self.run is None:
            return
        import mlflow

        mlflow.log_params(
            {
                "family": self.family,
                "latent_dim": self.latent_dim,
                "n_train": n_train,
                "n_val": n_val,
                "noise.sigma": self.params.noise.sigma,
                "noise.seed": self.params.noise.seed,
                **family_params(family_cls, self.params),
            }
        )
        if data is not None:
            _log_dataset(data, self.params, self.sample)

    @contextlib.contextmanager
    def trial(self, number: int, hyper: dict[str, Any]) -> Iterator[Any]:
        """A nested run for one search trial; yields a function ``log(history, final_value)``."""
        if self.run is None:
            yield lambda history, value: None
            return
        import mlflow

        name = f"{self.family}-{self.latent_dim}d-trial{number}"
        # in the parent's experiment (without experiment_id MLflow files nested runs under Default)
        with mlflow.start_run(run_name=name, nested=True, experiment_id=self.run.info.experiment_id):
            mlflow.set_tags(
                {"family": self.family, "latent_dim": str(self.latent_dim), "role": "search_trial", **owner_tags()}
            )
            layers = {"n_layers": len(hyper["units"])} if "units" in hyper else {}
            mlflow.log_params(
                {**layers, **{k: (",".join(map(str, v)) if isinstance(v, list) else v) for k, v in hyper.items()}}
            )

            def log(history: dict[str, list[float]], value: float) -> None:
                for step, (lv, vv) in enumerate(
                    zip(history.get("loss", []), history.get("val_loss", []), strict=False)
                ):
                    mlflow.log_metrics({"train_loss": lv, "val_loss": vv}, step=step)
                mlflow.log_metric("final_val_loss", value)

            yield log

    def epoch_callback(self) -> Any:
        """A Keras callback logging ``train_loss`` / ``val_loss`` per epoch (None when disabled)."""
        if self.run is None:
            return None
        import keras
        import mlflow

        class EpochLogger(keras.callbacks.Callback):
            def on_epoch_end(self, epoch, logs=None):
                logs = logs or {}
                vals = {"train_loss": logs.get("loss"), "val_loss": logs.get("val_loss")}
                mlflow.log_metrics({k: float(v) for k, v in vals.items() if v is not None}, step=epoch)

        return EpochLogger()

    def log_result(
        self,
        model: Any,
        model_dir: Path,
        record: dict[str, Any],
        metrics: dict[str, float],
        figure: Any,
        x_example: np.ndarray,
        y_example: np.ndarray,
    ) -> None:
        """Hyper-parameters, metrics, the record, the loss figure and the model (registered when its
        family is a registry candidate), and the whole model folder for
        :class:`~specdenoise.survey.denoiser.Denoiser`."""
        if self.run is None:
            return
        import mlflow

        mlflow.log_params(
            {f"hp.{k}": (",".join(map(str, v)) if isinstance(v, list) else v) for k, v in model.hyper.items()}
        )
        mlflow.log_metrics(metrics)
        log_json(record, "record.json")
        if figure is not None:
            mlflow.log_figure(figure, "loss_history.png")
        # only the paper models (sigma = noise.sigma, first seed) are logged as MLflow models and are
        # registry candidates: the champion is chosen at the paper level, never by a lucky seed or an
        # easier noise level; the other seeds / levels (~25 MB each) stay in models/<family>_<dim>_axis
        if self.params.tracking.log_models and self.level is None and self.seed_index == 0:
            _log_model(model, model_dir, x_example, y_example, self.params)
            mlflow.log_artifacts(str(model_dir), MODEL_ARTIFACT)


#: ``train`` settings that only an iterative (gradient-trained) family uses; ``kl_weight`` only a VAE.
ITERATIVE_ONLY = (
    "batch_size",
    "learning_rate",
    "max_epochs",
    "patience",
    "min_rel_drop",
    "lr_factor",
    "monitor",
    "fresh_noise",
)


def family_params(cls: Any, params: Params) -> dict[str, Any]:
    """The ``train.*`` scalars that apply to the family class ``cls`` (a PCA run logs no ``kl_weight``
    or epochs; None: all of them)."""
    skip = {"families", "latent_dims", "axis_dims"}
    if cls is not None and not cls.iterative:
        skip |= set(ITERATIVE_ONLY)
    if cls is not None and not getattr(cls, "variational", False):
        skip.add("kl_weight")
    tc = params.train.model_dump()
    return {f"train.{k}": v for k, v in tc.items() if k not in skip and not isinstance(v, (dict, list))}


def git_tags() -> dict[str, str]:
    """``mlflow.source.git.commit`` (and ``git_dirty``) of the working tree, when it is a git checkout,
    and ``launcher_run`` (the ``mlflow run`` launcher's run id, see :func:`specdenoise.tracking.setup`)."""
    launcher = (
        {"launcher_run": os.environ["SPECDENOISE_LAUNCHER_RUN"]} if os.environ.get("SPECDENOISE_LAUNCHER_RUN") else {}
    )

    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"], capture_output=True, text=True, timeout=10
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return launcher
    git = {"mlflow.source.git.commit": commit, "git_dirty": str(bool(dirty)).lower()} if commit else {}
    return {**git, **launcher}


def _log_dataset(data: Any, params: Params, sample: str) -> None:
    """The training and validation inputs as MLflow datasets (digest of the arrays, shape, noise level)."""
    import mlflow

    level = f"{params.noise.sigma:g}"
    for context, x in (("training", data.x), ("validation", data.x_val)):
        ds = mlflow.data.from_numpy(np.asarray(x), name=f"{sample}-noisy-sigma{level}-{context}")
        mlflow.log_input(ds, context=context)


def _log_model(model: Any, model_dir: Path, x_example: np.ndarray, y_example: np.ndarray, params: Params) -> None:
    """Log the model with a signature and explicit pip requirements in its family's MLflow flavour."""
    import mlflow
    from mlflow.models import infer_signature

    signature = infer_signature(x_example.astype(np.float32), y_example.astype(np.float32))
    registered = type(model).registered_name(params.tracking)
    if type(model).mlflow_flavour == "keras":
        import mlflow.keras

        mlflow.keras.log_model(
            model.native_model(),
            name="model",
            signature=signature,
            pip_requirements=pip_requirements(),
            registered_model_name=registered,
        )
        return
    code = Path(__file__).with_name("pyfunc_model.py")
    mlflow.pyfunc.log_model(
        name="model",
        python_model=str(code),
        artifacts={"model_dir": str(model_dir)},
        signature=signature,
        input_example=x_example.astype(np.float32),
        pip_requirements=pip_requirements(),
        registered_model_name=registered,
    )


def log_stage_run(
    params: Params,
    name: str,
    tags: dict[str, str] | None = None,
    metrics: dict[str, float] | None = None,
    run_params: dict[str, Any] | None = None,
    artifacts: list[Path] = (),
    artifact_path: str = "figures",
) -> str:
    """One run for a pipeline stage (``evaluate``, ``mzr``): tags, finite metrics, files; returns its id."""
    import mlflow

    exp_id = setup(params.tracking)
    mark_killed_runs(exp_id)
    with mlflow.start_run(experiment_id=exp_id, run_name=name) as run:
        mlflow.set_tags(
            {"role": name, "benchmark": benchmark_tag(params), **owner_tags(), **git_tags(), **(tags or {})}
        )
        if run_params:
            mlflow.log_params(run_params)
        if metrics:
            mlflow.log_metrics({k: float(v) for k, v in metrics.items() if v == v})
        for path in artifacts:
            mlflow.log_artifact(str(path), artifact_path=artifact_path)
        return run.info.run_id


def add_to_runs(
    params: Params, metrics: dict[str, dict[str, float]] | None = None, texts: dict[str, dict[str, str]] | None = None
) -> None:
    """Add metrics ``{run_id: {name: value}}`` (NaN skipped) and text files ``{run_id: {file: text}}`` to
    finished runs. The metrics of a run go in one batch (MLflow splits it in its own limits): one call per
    metric cost 5.3 s for the lines stage's 504 on the smoke profile."""
    from mlflow import MlflowClient
    from mlflow.entities import Metric

    setup(params.tracking)
    client = MlflowClient()
    for run_id, values in (metrics or {}).items():
        now = int(time.time() * 1000)
        batch = [Metric(name, float(value), now, 0) for name, value in values.items() if value == value]
        if batch:
            client.log_batch(run_id, metrics=batch)
    for run_id, files in (texts or {}).items():
        for name, text in files.items():
            client.log_text(run_id, text, name)
