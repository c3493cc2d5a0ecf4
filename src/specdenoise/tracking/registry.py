"""``models:/NAME@ALIAS``, ``models:/NAME/VERSION`` and ``runs:/RUN_ID`` to a local model folder."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from specdenoise.config import TrackingConfig
from specdenoise.errors import DataError
from specdenoise.tracking import check_store, quiet, tracking_uri
from specdenoise.tracking.runs import CALIBRATION, MODEL_ARTIFACT


def _run_id(client: Any, uri: str, info: dict[str, Any]) -> str:
    if uri.startswith("runs:/"):
        run_id = uri[len("runs:/") :].strip("/").split("/")[0]
        if not run_id:
            raise DataError(f"model '{uri}': expected runs:/<run_id>[/path]")
        return run_id
    body = uri[len("models:/") :].strip("/")
    if "@" in body:
        name, alias = body.split("@", 1)
        mv = client.get_model_version_by_alias(name, alias)
    elif "/" in body:
        name, ver = body.rsplit("/", 1)
        if not ver.isdigit():
            raise DataError(f"model '{uri}': version must be a number, got '{ver}'")
        mv = client.get_model_version(name, ver)
    else:
        raise DataError(f"model '{uri}': expected models:/<name>@<alias> or models:/<name>/<version>")
    info.update(model_name=name, model_version=int(mv.version))
    return mv.run_id


def download_model(
    uri: str, cfg: TrackingConfig, root: Path | None, dst: Path
) -> tuple[Path, tuple[dict, str] | None, dict[str, Any]]:
    """Download the run's saved model folder into ``dst``.

    Returns
    -------
    (Path, (dict, str) or None, dict)
        The local model folder, the run's calibration (JSON and its ``runs:/`` name) if it has
        one, and provenance (``tracking_uri``, ``run_id``, ``params_hash``, ``model_name``,
        ``model_version``).

    Raises
    ------
    DataError
        Missing store, unknown name / alias / version / run, or a run without the model folder.
    """
    quiet()
    store = tracking_uri(cfg, root)
    check_store(store, writable=False)  # a read-only command: never create or migrate a store
    import mlflow.artifacts
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    client = MlflowClient(tracking_uri=store, registry_uri=store)
    info: dict[str, Any] = {"tracking_uri": store}
    try:
        run_id = _run_id(client, uri, info)
        run = client.get_run(run_id)
    except MlflowException as exc:
        msg = str(getattr(exc, "message", exc)).splitlines()[0]
        raise DataError(f"model '{uri}': {msg} (store {store})") from None
    info.update(run_id=run_id, params_hash=run.data.tags.get("benchmark"))
    info.setdefault("model_name", run.data.tags.get("mlflow.runName"))
    top = {a.path for a in client.list_artifacts(run_id)}
    if MODEL_ARTIFACT not in top:
        raise DataError(
            f"model '{uri}': run {run_id} has no '{MODEL_ARTIFACT}' artifact; retrain it or pass the model directory"
        )
    local = Path(
        mlflow.artifacts.download_artifacts(
            run_id=run_id, artifact_path=MODEL_ARTIFACT, dst_path=str(dst), tracking_uri=store
        )
    )
    cal = None
    if CALIBRATION in top:
        text = mlflow.artifacts.load_text(f"{run.info.artifact_uri.rstrip('/')}/{CALIBRATION}")
        cal = (json.loads(text), f"runs:/{run_id}/{CALIBRATION}")
    return local, cal, info
