"""Where the spectra come from: the embedded universe or real SDSS spectra (``data.source``).

Each source module provides ``run_universe(params, out, n)`` (the parent catalogue) and
``run_observe(params, sample, out, progress)`` (observed-frame spectra on the SDSS-like grid).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

from specdenoise.errors import ConfigError
from specdenoise.sources import observe, sdss, universe


class Source(NamedTuple):
    """The two stage bodies of one ``data.source``."""

    run_universe: Callable[..., str]
    run_observe: Callable[..., str]


SOURCES: dict[str, Source] = {
    "universe": Source(universe.run_universe, observe.run_observe),
    "sdss": Source(sdss.run_universe, sdss.run_observe),
}


def source(name: str) -> Source:
    """The source called ``name`` (``data.source``)."""
    try:
        return SOURCES[name]
    except KeyError:
        raise ConfigError(f"data.source: unknown source '{name}' (known: {', '.join(SOURCES)})") from None
