"""Where the spectra come from: the embedded universe or real SDSS spectra (``data.source``).

Each source module provides ``run_universe(params, out, n)`` (the parent catalogue) and
``run_observe(params, sample, out, progress)`` (observed-frame spectra on the SDSS-like grid).
"""

from __future__ import annotations

from types import ModuleType

from specdenoise.errors import ConfigError
from specdenoise.sources import observe, sdss, universe


class _Universe:
    run_universe = staticmethod(universe.run_universe)
    run_observe = staticmethod(observe.run_observe)


SOURCES: dict[str, object] = {"universe": _Universe, "sdss": sdss}


def source(name: str) -> ModuleType | type:
    """The source called ``name`` (``data.source``)."""
    try:
        return SOURCES[name]
    except KeyError:
        raise ConfigError(f"data.source: unknown source '{name}' (known: {', '.join(SOURCES)})") from None
