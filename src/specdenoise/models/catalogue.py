"""The built-in model families by name, known without importing them.

:data:`BUILTIN` maps each family to the module that implements and registers it and to the
settings model of its ``train.<family>`` section (None: it takes none). Validating
``params.yaml`` reads only this table (:func:`specdenoise.models.sections.known_families`), so the
data stages do not import (or, in ``dvc.yaml``, depend on) the families' code;
:func:`specdenoise.models.get_family` imports a family's module when it is first asked for.
The order is the order of the ``train.<family>`` sections when dumped.

``tests/structure`` reads the module names from this file's text (a stage that names
``--model NAME`` depends on NAME's module, not the other families') and checks that each module
registers the families listed for it with these settings models.
"""

from __future__ import annotations

from specdenoise.models.base import FamilySettings
from specdenoise.models.neural_config import NetConfig
from specdenoise.models.posterior_config import PosteriorConfig

#: family name -> (module that registers it, its ``train.<family>`` settings model or None)
BUILTIN: dict[str, tuple[str, type[FamilySettings] | None]] = {
    "pca": ("specdenoise.models.linear", None),
    "wiener": ("specdenoise.models.linear", None),
    "mean": ("specdenoise.models.linear", None),
    "ae": ("specdenoise.models.neural", NetConfig),
    "vae": ("specdenoise.models.neural", NetConfig),
    "posterior": ("specdenoise.models.posterior", PosteriorConfig),
}
