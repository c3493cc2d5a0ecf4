"""A saved model folder as the :class:`~specdenoise.survey.denoiser.Denoiser` reads it: the model, its
``preprocess.json``, its calibration (inside the folder or in the DVC layout) and its provenance."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from specdenoise.models import store
from specdenoise.tracking.runs import CALIBRATION


def load_dir(path: Path) -> tuple[Any, dict | None, tuple[dict, str] | None]:
    """Model, ``preprocess.json`` and calibration of a saved model folder (``calibration.json``
    inside it, or the DVC layout's ``calibration/<family>_<dim>.json`` beside ``models/``)."""
    model, record = store.load_checked(path)
    cal = None
    for cand in (path / CALIBRATION, dvc_calibration(path)):
        if cand is not None and cand.exists():
            cal = (store.read_json(cand), str(cand))
            break
    return model, record, cal


def dvc_calibration(path: Path) -> Path | None:
    """``models/<key>/model`` -> ``calibration/<key>.json`` beside ``models/`` (the DVC layout)."""
    path = path.resolve()
    if path.name != store.MODEL or len(path.parents) < 3:
        return None
    return path.parents[2] / "calibration" / f"{path.parent.name}.json"


def local_provenance(path: Path) -> dict[str, Any]:
    """``model_name`` (the model's folder) and the MLflow ``run_id`` of a saved model folder, when recorded."""
    info: dict[str, Any] = {
        "model_name": path.resolve().parent.name if path.name == store.MODEL else path.resolve().name
    }
    run_id = (store.read_json(path.parent / store.METRICS) or {}).get("run_id")
    if run_id:
        info["run_id"] = run_id
    return info
