"""Saving and logging the served de-noiser (:mod:`specdenoise.tracking.served_model`), whose input
is raw observed spectra rather than preprocessed ones.

Serve it with ``mlflow models serve -m <path or models:/ URI> --env-manager local --host 127.0.0.1``
and POST ``{"dataframe_records": [{"wave": [...], "flux": [...], "ivar": [...], "z": 0.05}]}`` to
``/invocations``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from specdenoise.tracking import pip_requirements

CODE = Path(__file__).with_name("served_model.py")


def _artifacts(model_dir: str | Path, calibration: str | Path | None) -> dict[str, str]:
    arts = {"model_dir": str(Path(model_dir).resolve())}
    if calibration is not None:
        arts["calibration"] = str(Path(calibration).resolve())
    return arts


def save_served_model(
    path: str | Path, model_dir: str | Path, calibration: str | Path | None = None, config: dict | None = None
) -> Path:
    """Save the served de-noiser of the saved model ``model_dir`` as an MLflow model folder at ``path``.

    ``config`` (``model_config``) overrides the quality options (``max_masked``, ``z_max``, ``ood_chi2``).
    """
    import mlflow

    mlflow.pyfunc.save_model(
        path=str(path),
        python_model=str(CODE),
        artifacts=_artifacts(model_dir, calibration),
        model_config=config or {},
        pip_requirements=pip_requirements(),
    )
    return Path(path)


def log_served_model(
    model_dir: str | Path, calibration: str | Path | None = None, registered_model_name: str | None = None
) -> Any:
    """Log the served de-noiser to the active MLflow run (``served_model``), optionally registering it."""
    import mlflow

    return mlflow.pyfunc.log_model(
        name="served_model",
        python_model=str(CODE),
        artifacts=_artifacts(model_dir, calibration),
        pip_requirements=pip_requirements(),
        registered_model_name=registered_model_name,
    )
