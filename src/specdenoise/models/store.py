"""The trained-model folder: one layout, parsed here only.

``<models_dir>/<family>_<dim>/`` holds ``model/`` (the saved model, :func:`load_model`, plus
``preprocess.json``: the preprocessing and noise it was trained with), ``record.json`` (hyper-
parameters, metrics, search trials, history) and ``metrics.json`` (the DVC metrics, with the
MLflow run id). A folder is replaced atomically: the new one is renamed in, the old one removed
after, so an interruption never leaves the name without a complete model.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from specdenoise.errors import DataError
from specdenoise.io import load_json
from specdenoise.models.base import DenoisingModel, load_model
from specdenoise.tracking import benchmark_tag
from specdenoise.version import __version__

MODEL = "model"
RECORD = "record.json"
METRICS = "metrics.json"
PREPROCESS = "preprocess.json"


def key(family: str, latent_dim: int) -> str:
    """Folder name of a model: ``<family>_<dim>``."""
    return f"{family}_{latent_dim}"


def read_json(path: Path) -> dict[str, Any] | None:
    """A JSON file, or None when it does not exist; corrupt JSON is a DataError naming it."""
    return load_json(path) if path.exists() else None


def training_record(params: Any, noise: dict[str, Any]) -> dict[str, Any]:
    """``preprocess.json``: what must travel with a trained model so that new spectra are
    preprocessed identically, and the noise it was trained on (``noise``)."""
    return {
        "preprocess": params.preprocess.model_dump(),
        "noise": noise,
        "params_hash": benchmark_tag(params),
        "specdenoise_version": __version__,
    }


@dataclass(frozen=True)
class TrainedModel:
    """One ``<family>_<dim>`` folder of a models directory."""

    root: Path
    family: str
    latent_dim: int

    @classmethod
    def at(cls, root: str | Path) -> TrainedModel:
        root = Path(root)
        family, sep, dim = root.name.rpartition("_")
        if not sep or not dim.isdigit() or not family:
            raise DataError(f"{root}: not a trained-model folder (expected <family>_<dim>)")
        return cls(root, family, int(dim))

    @property
    def name(self) -> str:
        return self.root.name

    @property
    def model_dir(self) -> Path:
        return self.root / MODEL

    def record(self) -> dict[str, Any]:
        rec = read_json(self.root / RECORD)
        if rec is None:
            raise DataError(f"{self.root / RECORD}: file not found (train {self.name} first)")
        return rec

    def metrics(self) -> dict[str, Any]:
        return read_json(self.root / METRICS) or {}

    def run_id(self) -> str | None:
        return self.metrics().get("run_id")

    def load(self) -> DenoisingModel:
        return load_model(self.model_dir)


def list_models(models_dir: str | Path, dims: list[int] | None = None) -> list[TrainedModel]:
    """Every trained model (a ``<family>_<dim>/model`` folder) in ``models_dir``, by name.

    Hidden folders (an interrupted training's ``.<name>.partial``) are never models.
    ``dims`` keeps only those latent dimensions.
    """
    out = []
    for mdir in sorted(Path(models_dir).glob(f"*/{MODEL}")):
        if mdir.parent.name.startswith(".") or not mdir.is_dir():
            continue
        tm = TrainedModel.at(mdir.parent)
        if dims is None or tm.latent_dim in dims:
            out.append(tm)
    return out


def replace(tmp: Path, final: Path) -> None:
    """Move the finished folder ``tmp`` to ``final``; an earlier ``final`` is removed only after."""
    old = final.with_name(f".{final.name}.old")
    shutil.rmtree(old, ignore_errors=True)
    if final.exists():
        final.rename(old)
    tmp.rename(final)
    shutil.rmtree(old, ignore_errors=True)
