"""Synthesised spectra carry the catalogue's line fluxes and the stated noise."""

import numpy as np
import pytest

from specdenoise.config import UniverseConfig
from specdenoise.physics.sky import sky_noise_shape
from specdenoise.sources.observe import observe, sdss_loglam, synthesise_truth
from specdenoise.sources.universe import draw_catalogue


@pytest.fixture(scope="module")
def setup():
    cfg = UniverseConfig(n_galaxies=400, seed=21, calibration_error=0.0, chunk_size=64)
    return cfg, draw_catalogue(cfg)


def test_sdss_grid():
    ll = sdss_loglam()
    assert np.allclose(np.diff(ll), 1e-4)
    assert 10 ** ll[0] == pytest.approx(3800, abs=1) and 10 ** ll[-1] <= 9200


def test_line_flux_recovered_from_the_spectrum(setup):
    cfg, cat = setup
    rows = cat[(cat["ptype"] == "star_forming") & (cat["Halpha_flux"] > 50)].head(20)
    bare = rows.copy()
    for col in [c for c in bare.columns if c.endswith("_flux_sf") or c.endswith("_flux_nlr")]:
        bare[col] = 0.0
    only_ha = bare.copy()
    only_ha["Halpha_flux_sf"] = rows["Halpha_flux_sf"]
    continuum = synthesise_truth(bare)
    with_lines = synthesise_truth(only_ha)
    ll = sdss_loglam()
    wave = 10**ll
    dlam = wave * np.log(10) * 1e-4
    for r, (_, g) in enumerate(rows.iterrows()):
        centre = 6562.8 * (1 + g["z"])
        win = np.abs(wave - centre) < 25
        measured = np.sum((with_lines[r] - continuum[r])[win] * dlam[win])
        assert measured == pytest.approx(g["Halpha_flux"], rel=1e-4)


def test_noise_matches_ivar_and_is_chunk_independent(setup):
    cfg, cat = setup
    rows = cat.head(30)
    a = observe(rows, cfg, chunk_size=7)
    b = observe(rows, cfg, chunk_size=30)
    # identical noise; the noise-free part agrees to float32 rounding of the batched matmul
    np.testing.assert_allclose(a["flux"] - a["truth"], b["flux"] - b["truth"], atol=1e-4)
    np.testing.assert_allclose(a["truth"], b["truth"], rtol=1e-5)
    good = a["ivar"] > 0
    pull = ((a["flux"] - a["truth"]) * np.sqrt(a["ivar"]))[good]
    assert pull.std() == pytest.approx(1.0, abs=0.02)
    assert 0 < (~good).mean() < 0.01  # bad pixels flagged at ~0.2 %
    snr = np.median(a["truth"] * np.sqrt(a["ivar"]), axis=1)
    assert 3 < np.median(snr) < 40  # SDSS-like per-pixel S/N


def test_bulk_observe_follows_the_stated_noise_model(setup):
    """64 spectra in one chunk: the noise-free part is the synthesis, ivar = 1 / (sky + Poisson variance)."""
    cfg, cat = setup
    rows = cat.head(64)
    out = observe(rows, cfg)
    ll = sdss_loglam()
    assert out["flux"].shape == (64, len(ll)) and np.isfinite(out["flux"]).all()
    np.testing.assert_array_equal(out["loglam"], ll)
    np.testing.assert_array_equal(out["id"], rows["id"].to_numpy())
    truth = synthesise_truth(rows)
    np.testing.assert_allclose(out["truth"], truth.astype(np.float32), rtol=1e-5, atol=1e-6 * np.abs(truth).max())
    # known answer for the inverse variance: the sky shape scaled to noise_level, plus object Poisson noise
    var = (rows["noise_level"].to_numpy()[:, None] * sky_noise_shape(ll)[None, :]) ** 2
    var = var + cfg.poisson_coeff * np.clip(truth, 0.0, None)
    good = out["ivar"] > 0
    np.testing.assert_allclose(out["ivar"][good], (1.0 / var)[good], rtol=1e-5)
    # bad pixels: the configured fraction (0.2 % of 64 x 3840 pixels, binomial scatter)
    n = good.size
    assert abs((~good).sum() - cfg.bad_pixel_fraction * n) < 5 * np.sqrt(cfg.bad_pixel_fraction * n)
