"""Model families behind one interface (:class:`~specdenoise.models.base.DenoisingModel`).

A new family is one module that defines a subclass and registers it with
:func:`~specdenoise.models.base.register`; training, evaluation, tracking and the
leaderboard find it through :func:`get_family` and :data:`FAMILIES`.
"""

from __future__ import annotations

from specdenoise.models.base import FAMILIES, DenoisingModel, TrainingData, get_family, load_model, register

# import the built-in families so that they register themselves
from specdenoise.models import linear as _linear  # noqa: E402,F401
from specdenoise.models import neural as _neural  # noqa: E402,F401

__all__ = ["FAMILIES", "DenoisingModel", "TrainingData", "get_family", "load_model", "register"]
