"""MLflow tracking and model registry: the only part of specdenoise that imports MLflow.

Configured at run time (never at import time):

* Backend: ``sqlite:///<project>/mlflow.db`` (absolute, so runs launched from DVC
  experiments in temporary folders land in the same store), artifacts under
  ``<project>/mlartifacts``; ``tracking.uri`` or ``MLFLOW_TRACKING_URI`` override it.
* One experiment per task (``tracking.experiment``); search trials are nested runs.
* Registry: families whose class says ``registry_candidate`` register versions of
  ``tracking.registered_model``; the version with the lowest test loss gets the alias
  ``champion`` (aliases, not the deprecated stages).

Sub-modules: :mod:`specdenoise.tracking.runs` (training, trial and stage runs),
:mod:`specdenoise.tracking.registry` (``models:/`` and ``runs:/`` URIs to local model folders),
:mod:`specdenoise.tracking.pyfunc_model` (the "models from code" entry of linear families).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import platform
import sqlite3
from collections.abc import Collection
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from specdenoise.config import Params, TrackingConfig
from specdenoise.errors import DataError

CHAMPION = "champion"
#: Tables every MLflow sqlite store has (checked before a store is used).
MLFLOW_TABLES = frozenset({"alembic_version", "experiments", "runs", "tags", "metrics", "params"})
#: Loggers of MLflow's dependencies kept at WARNING.
QUIET_LOGGERS = ("mlflow", "alembic", "urllib3")


def is_model_uri(text: str) -> bool:
    """True for ``models:/...`` and ``runs:/...`` (MLflow URIs), False for a path."""
    return str(text).startswith(("models:/", "runs:/"))


def tracking_uri(cfg: TrackingConfig, root: Path | None = None) -> str:
    """The tracking (and registry) URI: ``tracking.uri``, ``MLFLOW_TRACKING_URI`` or the project's sqlite store."""
    if cfg.uri:
        return cfg.uri
    if os.environ.get("MLFLOW_TRACKING_URI"):
        return os.environ["MLFLOW_TRACKING_URI"]
    root = (root or Path.cwd()).resolve()
    return f"sqlite:///{root / 'mlflow.db'}"


def quiet() -> None:
    """Keep MLflow's and its dependencies' loggers at WARNING."""
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)


def check_store(uri: str, writable: bool) -> None:
    """Refuse a sqlite MLflow store that is not one, before MLflow touches it.

    A missing or empty (0-byte) file is a new store only for a command that writes runs
    (``writable``); a read-only command never creates or migrates one. A file that sqlite cannot
    read (truncated, random bytes) or without MLflow's tables is a :class:`DataError` naming it.
    Other URIs (a tracking server, a folder) are left to MLflow.
    """
    if not uri.startswith("sqlite:///"):
        return
    path = Path(uri[len("sqlite:///") :])
    if not path.exists() or (path.is_file() and path.stat().st_size == 0):
        if writable:
            return
        state = "does not exist" if not path.exists() else "is empty (0 bytes)"
        raise DataError(f"MLflow store {path} {state}; set tracking.uri or run from the project folder")
    try:
        con = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
        try:
            tables = {row[0] for row in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
            check = con.execute("PRAGMA quick_check").fetchone()[0]
        finally:
            con.close()
    except sqlite3.Error as exc:
        raise DataError(f"{path}: not a readable MLflow sqlite store ({exc})") from None
    if check != "ok" or not MLFLOW_TABLES <= tables:
        what = f"corrupt ({check})" if check != "ok" else "has no MLflow tables"
        raise DataError(f"{path}: not an MLflow sqlite store ({what})")


def setup(cfg: TrackingConfig, root: Path | None = None) -> str:
    """Point MLflow at the store and return the experiment id (created if missing).

    Under ``mlflow run`` (which starts a launcher run, in the experiment named on its command
    line, and passes its id in ``MLFLOW_RUN_ID``), the pipeline's runs still go to
    ``tracking.experiment``: the id is moved to ``SPECDENOISE_LAUNCHER_RUN`` (tagged on each run as
    ``launcher_run``) so that ``start_run`` opens new runs instead of resuming the launcher.
    """
    import mlflow

    quiet()
    launcher = os.environ.pop("MLFLOW_RUN_ID", None)
    if launcher:
        os.environ["SPECDENOISE_LAUNCHER_RUN"] = launcher
    uri = tracking_uri(cfg, root)
    check_store(uri, writable=True)
    mlflow.set_tracking_uri(uri)
    exp = mlflow.get_experiment_by_name(cfg.experiment)
    if exp is not None:
        return exp.experiment_id
    artifacts = None
    if uri.startswith("sqlite:///"):
        artifacts = Path(uri[len("sqlite:///") :]).parent.joinpath("mlartifacts").resolve().as_uri()
    return mlflow.create_experiment(cfg.experiment, artifact_location=artifacts)


def environment() -> dict[str, Any]:
    """Versions and machine facts logged with every run."""
    pkgs = {}
    for name in ("specdenoise", "numpy", "scikit-learn", "keras", "tensorflow", "jax", "mlflow", "dvc", "optuna"):
        try:
            pkgs[name] = version(name)
        except PackageNotFoundError:
            pass
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "keras_backend": os.environ.get("KERAS_BACKEND", "tensorflow"),
        "packages": pkgs,
    }


def benchmark_tag(params: Params) -> str:
    """Id shared by every run of one benchmark (same parameters): filter the MLflow UI's
    compare view with ``tags.benchmark = '<id>'`` to see every family side by side."""
    dump = json.dumps(params.model_dump(by_alias=True), sort_keys=True, default=str)
    return hashlib.sha256(dump.encode()).hexdigest()[:12]


def pip_requirements() -> list[str]:
    """Explicit requirements logged with every model (exact versions of this environment)."""
    names = ["numpy", "keras", "tensorflow", "mlflow", "scikit-learn"]
    return [f"{n}=={version(n)}" for n in names]


def set_champion(
    cfg: TrackingConfig,
    registered_model: str | None = None,
    metric: str = "test_loss",
    run_ids: Collection[str] | None = None,
) -> dict[str, Any] | None:
    """Give the alias ``champion`` to the registered version with the lowest ``metric``.

    Only versions whose runs logged ``metric`` are compared, and with ``run_ids`` only the versions
    of those runs: a pipeline stage passes the runs of the models it trained, so that a version an
    older code or parameter set left in the registry (with a lower loss on other data, or on the
    same data by other code) never stays the champion after a new benchmark. Returns the champion's
    version, run id and metric, or ``None`` when no version qualifies (the alias is then left as it is).
    """
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    name = registered_model or cfg.registered_model
    setup(cfg)
    client = MlflowClient()
    try:
        versions = client.search_model_versions(f"name='{name}'")
    except MlflowException:
        return None
    best = None
    for v in versions:
        if not v.run_id or (run_ids is not None and v.run_id not in run_ids):
            continue
        run = client.get_run(v.run_id)
        if run.data.tags.get("role") != "final" or metric not in run.data.metrics:
            continue
        value = run.data.metrics[metric]
        if best is None or value < best[0]:
            best = (value, v)
    if best is None:
        return None
    value, ver = best
    client.set_registered_model_alias(name, CHAMPION, ver.version)
    return {"model": name, "version": int(ver.version), "run_id": ver.run_id, metric: value}
