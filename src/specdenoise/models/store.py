"""The trained-model folder: one layout, parsed here only.

A model's identity is (family, latent dim, noise level, seed index). ``<models_dir>/<family>_<dim>/``
is the paper-level (``noise.sigma``), first-seed model; the other seeds and noise levels of the
dimensions in ``train.axis_dims`` live in ``<models_dir>/<family>_<dim>_axis/`` (one DVC output
per family and dimension) as ``<family>_<dim>_s<k>/`` (paper level, seed k) and
``<family>_<dim>_n<level>_s<k>/`` (another level). :func:`list_models` lists both, and
:func:`noisy_path` gives the noise-added set matching a model's level.

Each model folder holds ``model/`` (the saved model, :func:`load_model`, plus
``preprocess.json``: the preprocessing and noise it was trained with), ``record.json`` (hyper-
parameters, metrics, search trials, history) and ``metrics.json`` (the DVC metrics, with the
MLflow run id). A folder is replaced atomically: the new one is renamed in, the old one removed
after, so an interruption never leaves the name without a complete model.
"""

from __future__ import annotations

import logging
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from specdenoise.data.artefacts import NOISY_LEVELS_DIR, level_name, noisy_level_path
from specdenoise.errors import DataError, ModelError
from specdenoise.io import kill_point, load_json
from specdenoise.models import load_model
from specdenoise.models.base import DenoisingModel
from specdenoise.tracking import benchmark_tag
from specdenoise.version import __version__

log = logging.getLogger(__name__)

MODEL = "model"
RECORD = "record.json"
METRICS = "metrics.json"
PREPROCESS = "preprocess.json"
TEST_LOSSES = "test_losses.npz"
AXIS_SUFFIX = "_axis"
_NAME = re.compile(r"^(?P<family>.+?)_(?P<dim>\d+)(?:_n(?P<level>\d+(?:\.\d+)?(?:e-?\d+)?))?(?:_s(?P<seed>\d+))?$")


def key(family: str, latent_dim: int, level: float | None = None, seed: int = 0) -> str:
    """Folder name of a model: ``<family>_<dim>`` (paper level, first seed), ``<family>_<dim>_s<k>``
    (paper level, seed k) or ``<family>_<dim>_n<level>_s<k>`` (another noise level)."""
    name = f"{family}_{latent_dim}"
    if level is not None:
        return f"{name}_n{level_name(level)}_s{seed}"
    return f"{name}_s{seed}" if seed else name


def axis_dir(models_dir: str | Path, family: str, latent_dim: int) -> Path:
    """The folder (one DVC output) of a family and dimension's other seeds and noise levels."""
    return Path(models_dir) / f"{family}_{latent_dim}{AXIS_SUFFIX}"


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
    """One trained-model folder of a models directory.

    ``noise_level`` is None for the paper level (``noise.sigma``; see :meth:`level`), ``seed``
    the index of the training seed (0 = the paper model).
    """

    root: Path
    family: str
    latent_dim: int
    noise_level: float | None = None
    seed: int = 0

    @classmethod
    def at(cls, root: str | Path) -> TrainedModel:
        root = Path(root)
        m = _NAME.match(root.name)
        if m is None:
            raise DataError(f"{root}: not a trained-model folder (expected <family>_<dim>[_n<level>][_s<seed>])")
        level = float(m["level"]) if m["level"] is not None else None
        return cls(root, m["family"], int(m["dim"]), level, int(m["seed"] or 0))

    @property
    def name(self) -> str:
        return self.root.name

    @property
    def is_paper(self) -> bool:
        """The paper-reproduction model: paper level, first seed (``<family>_<dim>``)."""
        return self.noise_level is None and self.seed == 0

    def level(self, paper_sigma: float) -> float:
        """The noise level (sigma, normalised units) the model was trained and is tested at."""
        return paper_sigma if self.noise_level is None else self.noise_level

    @property
    def cell(self) -> str:
        """The leaderboard cell the model belongs to (seeds pooled): ``<family>_<dim>`` at its level."""
        return key(self.family, self.latent_dim)

    def test_losses(self) -> dict[str, Any]:
        """Per-test-spectrum losses saved by training (``test_losses.npz``: ``loss``, ``loss_truth``,
        ``input_loss``, ``input_loss_truth``, ``index``)."""
        path = self.root / TEST_LOSSES
        if not path.exists():
            raise DataError(f"{path}: file not found (re-train {self.name})")
        with np.load(path) as z:
            return {k: z[k] for k in z.files}

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


def list_models(models_dir: str | Path, dims: list[int] | None = None, paper_only: bool = False) -> list[TrainedModel]:
    """Every trained model in ``models_dir``: the ``<family>_<dim>/model`` folders and those of the
    seed / noise-level axis (``<family>_<dim>_axis/<name>/model``), sorted by family, dimension,
    level (paper level first) and seed.

    Hidden folders (an interrupted training's ``.<name>.partial``) are never models. ``dims``
    keeps only those latent dimensions; ``paper_only`` only the paper models (``<family>_<dim>``).
    """
    root = Path(models_dir)
    found = sorted(root.glob(f"*/{MODEL}")) + sorted(root.glob(f"*{AXIS_SUFFIX}/*/{MODEL}"))
    out = []
    for mdir in found:
        if any(p.startswith(".") for p in mdir.relative_to(root).parts) or not mdir.is_dir():
            continue
        tm = TrainedModel.at(mdir.parent)
        if (dims is None or tm.latent_dim in dims) and (tm.is_paper or not paper_only):
            out.append(tm)
    return sorted(out, key=lambda t: (t.family, t.latent_dim, t.noise_level or -1.0, t.seed))


def noisy_path(
    tm: TrainedModel, paper_sigma: float, noisy: str | Path, levels_dir: str | Path = NOISY_LEVELS_DIR
) -> Path:
    """The noise-added set a model is tested on: ``noisy`` (the paper level, ``noise.sigma``) or
    ``<levels_dir>/sigma_<level>.npz`` for a model of another level."""
    level = tm.level(paper_sigma)
    return Path(noisy) if level == paper_sigma else noisy_level_path(levels_dir, level)


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
