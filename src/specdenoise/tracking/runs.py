"""MLflow runs of the pipeline: one final run per trained model (with nested search trials),
one run per evaluation stage, and metrics or files added to earlier runs by later stages."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from specdenoise.config import Params
from specdenoise.tracking import benchmark_tag, environment, pip_requirements, setup

#: Artifact folder holding the whole saved model (VAE encoder and preprocess.json included).
MODEL_ARTIFACT = "specdenoise_model"
#: Calibration file name in a run's artifacts (and in a model folder).
CALIBRATION = "calibration.json"


def log_json(obj: Any, name: str) -> None:
    """Log ``obj`` as a JSON text artifact of the active run."""
    import mlflow

    mlflow.log_text(json.dumps(obj, indent=2, sort_keys=True, default=str), name)


class TrainingRun:
    """The final MLflow run of one trained model (``role: final``); a no-op when disabled.

    Use as a context manager; :meth:`trial` opens a nested run per search trial.
    """

    def __init__(
        self, params: Params, family: str, latent_dim: int, sample: str, enabled: bool = True, root: Path | None = None
    ):
        self.params, self.family, self.latent_dim, self.sample = params, family, latent_dim, sample
        self.enabled, self.root = enabled, root
        self.run = None

    @property
    def run_id(self) -> str | None:
        return self.run.info.run_id if self.run is not None else None

    def __enter__(self) -> TrainingRun:
        if not self.enabled:
            return self
        import mlflow

        exp_id = setup(self.params.tracking, self.root)
        self.run = mlflow.start_run(experiment_id=exp_id, run_name=f"{self.family}-{self.latent_dim}d")
        noise_tag = self.params.noise.model if self.sample == "main" else self.sample
        mlflow.set_tags(
            {
                "family": self.family,
                "latent_dim": str(self.latent_dim),
                "role": "final",
                "noise_model": noise_tag,
                "sample": self.sample,
                "benchmark": benchmark_tag(self.params),
            }
        )
        log_json(environment(), "environment.json")
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.run is not None:
            import mlflow

            mlflow.end_run()

    def log_start(self, n_train: int, n_val: int) -> None:
        """Parameters known before training: sizes and the ``train`` section's scalars."""
        if self.run is None:
            return
        import mlflow

        tc = self.params.train.model_dump()
        scalars = {f"train.{k}": v for k, v in tc.items() if not isinstance(v, (dict, list))}
        mlflow.log_params(
            {"family": self.family, "latent_dim": self.latent_dim, "n_train": n_train, "n_val": n_val, **scalars}
        )

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
            mlflow.set_tags({"family": self.family, "latent_dim": str(self.latent_dim), "role": "search_trial"})
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
        if self.params.tracking.log_models:
            _log_model(model, model_dir, x_example, y_example, self.params)
            mlflow.log_artifacts(str(model_dir), MODEL_ARTIFACT)


def _log_model(model: Any, model_dir: Path, x_example: np.ndarray, y_example: np.ndarray, params: Params) -> None:
    """Log the model with a signature and explicit pip requirements in its family's MLflow flavour."""
    import mlflow
    from mlflow.models import infer_signature

    signature = infer_signature(x_example.astype(np.float32), y_example.astype(np.float32))
    registered = params.tracking.registered_model if type(model).registry_candidate else None
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
    with mlflow.start_run(experiment_id=exp_id, run_name=name) as run:
        mlflow.set_tags({"role": name, "benchmark": benchmark_tag(params), **(tags or {})})
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
    finished runs."""
    from mlflow import MlflowClient

    setup(params.tracking)
    client = MlflowClient()
    for run_id, values in (metrics or {}).items():
        for name, value in values.items():
            if value == value:
                client.log_metric(run_id, name, float(value))
    for run_id, files in (texts or {}).items():
        for name, text in files.items():
            client.log_text(run_id, text, name)
