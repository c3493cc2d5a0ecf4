"""``train.ae`` / ``train.vae`` settings (:class:`NetConfig`), apart from the networks in
:mod:`specdenoise.models.neural` so that validating ``params.yaml`` does not import them
(see :mod:`specdenoise.models.catalogue`)."""

from __future__ import annotations

from pydantic import Field, model_validator

from specdenoise.models.base import FamilySettings


class NetConfig(FamilySettings):
    """``train.ae`` / ``train.vae``: the fixed net (used when ``search.trials`` is 0, and as
    trial 0 of the search with ``search.include_baseline``)."""

    units: list[int] = Field([1000, 900], min_length=1, max_length=6, description="dense layer widths of the encoder")
    dropout: float = Field(0.1, ge=0.0, lt=1.0, description="dropout rate after every dense layer")

    @model_validator(mode="after")
    def _units(self) -> NetConfig:
        if any(u <= 0 for u in self.units):
            raise ValueError("units must be positive")
        return self
