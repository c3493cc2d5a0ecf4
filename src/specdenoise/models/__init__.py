"""Model families behind one interface (:class:`~specdenoise.models.base.DenoisingModel`).

A new family is one module that defines a subclass, declares its capabilities (``iterative``,
``searchable``, ``has_posterior``, ``registry_candidate``, ``mlflow_flavour``) and its
``settings_model`` (the ``train.<family>`` section of ``params.yaml``), and registers it with
:func:`~specdenoise.models.base.register`; a built-in family is also listed in
:mod:`specdenoise.models.catalogue`. Training, evaluation, tracking and the leaderboard find it
through :func:`get_family` and :func:`load_builtin_families`, and
:class:`~specdenoise.config.TrainConfig` validates its section.

The families are imported on demand, never when this package is: ``specdenoise.config`` (which
every command imports) needs only :mod:`.base` and the catalogue, so a data stage neither imports
nor, in ``dvc.yaml``, depends on the families' code.
"""

from __future__ import annotations

from pathlib import Path

from specdenoise.errors import ModelError
from specdenoise.models import base
from specdenoise.models.base import FAMILIES, DenoisingModel, TrainingData, register, unregister
from specdenoise.models.loading import load_files, read_description


def load_builtin_families() -> dict[str, type[DenoisingModel]]:
    """Import the built-in families' modules (each registers its families) and return
    :data:`~specdenoise.models.base.FAMILIES`: name -> class, built-in and registered."""
    from specdenoise.models import linear, neural, posterior  # noqa: F401

    return FAMILIES


def get_family(name: str) -> type[DenoisingModel]:
    """The family class called ``name``, its module imported on first use.

    Raises
    ------
    ConfigError
        No family is called ``name``; the message lists the known ones.
    """
    if name not in FAMILIES:
        load_builtin_families()
    return base.get_family(name)


def load_model(path: str | Path) -> DenoisingModel:
    """Load a model saved by :meth:`DenoisingModel.save` (any family), importing its family.

    Raises
    ------
    ModelError
        No ``family.json``, a corrupt or incomplete one, an unknown family, or family files that
        are missing, corrupt or refused (a Keras file with unsafe layers); the message names the file.
    """
    meta = read_description(path)
    families = load_builtin_families()
    if meta["family"] not in families:
        raise ModelError(f"{Path(path) / 'family.json'}: {base.unknown_family(meta['family'])}")
    return load_files(families[meta["family"]], path, meta)


__all__ = [
    "FAMILIES",
    "DenoisingModel",
    "TrainingData",
    "get_family",
    "load_builtin_families",
    "load_model",
    "register",
    "unregister",
]
