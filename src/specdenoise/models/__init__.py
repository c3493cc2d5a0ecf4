"""Model families behind one interface (:class:`~specdenoise.models.base.DenoisingModel`).

A new family is one module that defines a subclass, declares its capabilities (``iterative``,
``searchable``, ``has_posterior``, ``registry_candidate``, ``mlflow_flavour``) and its
``settings_model`` (the ``train.<family>`` section of ``params.yaml``), and registers it with
:func:`~specdenoise.models.base.register`; training, evaluation, tracking and the
leaderboard find it through :func:`get_family` and :data:`FAMILIES`, and
:class:`~specdenoise.config.TrainConfig` validates its section.
"""

from __future__ import annotations

# import the built-in families so that they register themselves. specdenoise.config imports
# specdenoise.models.base, which runs this file first: nothing imported here may import
# specdenoise.config at module top (so not models.store, which imports specdenoise.tracking).
from specdenoise.models import linear as _linear  # noqa: E402,F401
from specdenoise.models import neural as _neural  # noqa: E402,F401
from specdenoise.models import posterior as _posterior  # noqa: E402,F401
from specdenoise.models.base import FAMILIES, DenoisingModel, TrainingData, get_family, register, unregister
from specdenoise.models.loading import load_model

__all__ = ["FAMILIES", "DenoisingModel", "TrainingData", "get_family", "load_model", "register", "unregister"]
