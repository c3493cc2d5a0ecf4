"""The trained-model folder: one layout, parsed here only.

``<models_dir>/<family>_<dim>/`` holds ``model/`` (the saved model, :func:`load_model`, plus
``preprocess.json``: the preprocessing and noise it was trained with), ``record.json`` (hyper-
parameters, metrics, search trials, history) and ``metrics.json`` (the DVC metrics, with the
MLflow run id). A folder is replaced atomically: the new one is renamed in, the old one removed
after, so an interruption never leaves the name without a complete model.
"""

from __future__ import annotations

import logging
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from specdenoise.errors import DataError, ModelError
from specdenoise.io import kill_point, load_json
from specdenoise.models.base import DenoisingModel
from specdenoise.models.loading import load_model
from specdenoise.tracking import benchmark_tag
from specdenoise.version import __version__

log = logging.getLogger(__name__)

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


def load_checked(path: Path) -> tuple[DenoisingModel, dict[str, Any] | None]:
    """A saved model folder's model and its ``preprocess.json`` (None when absent), checked to agree:
    the pixels the preprocessing makes are the pixels the model takes (else a ModelError naming both)."""
    model = load_model(path)
    record = read_json(path / PREPROCESS)
    pre = record.get("preprocess") if isinstance(record, dict) else None
    n_pix, takes = (pre or {}).get("n_pix") if isinstance(pre, dict) else None, model.input_size()
    if n_pix is not None and takes is not None and n_pix != takes:
        raise ModelError(
            f"{path / PREPROCESS}: preprocess.n_pix is {n_pix} but the {model.family} model in {path} "
            f"takes {takes} pixels (a preprocess.json of another model?)"
        )
    return model, record


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


def _old(final: Path) -> Path:
    return final.with_name(f".{final.name}.old")


def recover(final: Path) -> None:
    """Finish what an interrupted :func:`replace` left: the earlier model is renamed back when the
    new one never arrived, and a leftover copy of it is removed once ``final`` is complete."""
    old = _old(final)
    if old.exists() and not final.exists():
        old.rename(final)
        log.warning("%s: restored the earlier model from %s (an interrupted replacement)", final, old.name)
    shutil.rmtree(old, ignore_errors=True)


def replace(tmp: Path, final: Path) -> None:
    """Move the finished folder ``tmp`` to ``final``; an earlier ``final`` is removed only after.

    Between the two renames ``final`` is missing for an instant; a kill there leaves the
    earlier model complete in ``.<name>.old``, which :func:`recover` (the next training of the
    same model) renames back.
    """
    recover(final)
    old = _old(final)
    if final.exists():
        final.rename(old)
    kill_point("replace-moved-old")
    tmp.rename(final)
    kill_point("replace-moved-new")
    shutil.rmtree(old, ignore_errors=True)
