"""The cosmology tables: close to astropy's Planck18, and one table for every chunk of a draw."""

from __future__ import annotations

import numpy as np
from astropy.cosmology import Planck18

from specdenoise.physics.relations import age_of_universe_yr, distance_table, luminosity_distance_cm


def test_interpolated_distances_and_ages_match_planck18():
    rng = np.random.default_rng(0)
    for lo, hi, tol in ((0.001, 0.06, 1e-6), (0.1, 2.5, 1e-5)):  # 2001-point tables to 0.12 and 3.6
        z = rng.uniform(lo, hi, 500)
        dl = Planck18.luminosity_distance(z).to("cm").value
        age = Planck18.age(z).to("yr").value
        assert np.max(np.abs(luminosity_distance_cm(z) / dl - 1)) < tol
        assert np.max(np.abs(age_of_universe_yr(z) / age - 1)) < tol


def test_chunks_with_different_largest_redshifts_share_one_table():
    distance_table.cache_clear()
    rng = np.random.default_rng(1)
    for _ in range(5):  # chunks of a universe draw: each has its own largest redshift
        luminosity_distance_cm(rng.uniform(0.024, 0.05, 100))
    assert distance_table.cache_info().misses == 1
