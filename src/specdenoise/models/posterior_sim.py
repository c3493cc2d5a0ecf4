"""Clean universe spectra for the posterior family's prior fit, calibration and benchmark.

Clean spectra are drawn from the universe's population model with seeds disjoint from the
pipeline's catalogue (``[seed, stream, chunk]``), synthesised noise-free and preprocessed
(rest frame, 825 bins, unit L2 norm). :func:`clean_source` binds the configuration into the
callable the family's ``fit`` reads from ``TrainingData.meta["clean_stream"]``.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import pandas as pd

from specdenoise.config import PreprocessConfig, UniverseConfig
from specdenoise.data.preprocess import preprocess
from specdenoise.sources.observe import sdss_loglam, synthesise_truth
from specdenoise.sources.population import draw_chunk


def iter_clean(
    ucfg: UniverseConfig, pcfg: PreprocessConfig, n: int, seed: int, stream: int, chunk: int = 5000
) -> Iterator[tuple[np.ndarray, Any]]:
    """Yield ``(flux (m, P) unit-L2-norm clean spectra, catalogue rows)`` in chunks, ``n`` in all."""
    loglam = sdss_loglam()
    for ci, start in enumerate(range(0, n, chunk)):
        m = min(chunk, n - start)
        rng = np.random.default_rng([seed, stream, ci])
        cat = draw_chunk(ucfg, m, rng, 10_000_000 * (stream + 1) + start)
        truth = synthesise_truth(cat, loglam)
        obs = {"loglam": loglam, "flux": truth, "ivar": np.ones_like(truth), "z": cat["z"].to_numpy()}
        obs["id"] = cat["id"].to_numpy()
        pre = preprocess(obs, pcfg, source="universe draw")
        yield pre["flux"].astype(np.float64), cat


def draw_clean(ucfg, pcfg, n: int, seed: int, stream: int, chunk: int = 5000) -> tuple[np.ndarray, Any]:
    """All of :func:`iter_clean` at once (small ``n``)."""
    parts = list(iter_clean(ucfg, pcfg, n, seed, stream, chunk))
    return np.concatenate([p[0] for p in parts]), pd.concat([p[1] for p in parts], ignore_index=True)


def clean_source(ucfg: UniverseConfig, pcfg: PreprocessConfig):
    """``f(n, seed, stream, chunk)`` -> :func:`iter_clean` with this configuration."""

    def stream(n: int, seed: int, stream: int, chunk: int = 5000):
        return iter_clean(ucfg, pcfg, n, seed, stream, chunk)

    return stream
