"""The universe recovers the relations it was built from (known truth)."""

import numpy as np
import pytest

from specdenoise.config import UniverseConfig
from specdenoise.physics.relations import CLASSES, cardelli, kewley01, mzr, sfms
from specdenoise.sources.universe import draw_catalogue


@pytest.fixture(scope="module")
def cat():
    return draw_catalogue(UniverseConfig(n_galaxies=20000, seed=3))


def test_population_ranges_and_determinism(cat):
    assert cat["z"].between(0.024, 0.05).all()
    assert set(cat["class"].astype(str)) <= set(CLASSES)
    again = draw_catalogue(UniverseConfig(n_galaxies=2000, seed=3))
    a = draw_catalogue(UniverseConfig(n_galaxies=2000, seed=3))
    np.testing.assert_array_equal(a["Halpha_flux_meas"].to_numpy(), again["Halpha_flux_meas"].to_numpy())


def test_mass_metallicity_relation_and_fmr(cat):
    sf = cat[cat["ptype"] == "star_forming"]
    resid = sf["oh"] - mzr(sf["log_mass"])
    assert abs(np.median(resid)) < 0.02
    # scatter = intrinsic (0.05) + FMR term (0.25 x 0.3 dex) in quadrature ~ 0.09 dex
    assert resid.std() == pytest.approx(np.hypot(0.05, 0.25 * 0.3), rel=0.15)
    d_sfr = sf["log_sfr"] - sfms(sf["log_mass"])
    assert np.corrcoef(d_sfr, resid)[0, 1] < -0.6  # metallicity scatter correlates with SFR


def test_balmer_decrement_follows_the_dust(cat):
    sf = cat[(cat["ptype"] == "star_forming")]
    ratio = sf["Halpha_flux"] / sf["Hbeta_flux"]
    k = cardelli(np.array([4861.32, 6562.8]))
    intrinsic = ratio / 10 ** (0.4 * (k[0] - k[1]) * sf["ebv_gas"])
    # dust removed, the Cloudy grids' own decrement remains: ~2.81 (Case B), up to ~3.1 at high Z
    assert np.median(intrinsic) == pytest.approx(2.81, abs=0.03)
    assert intrinsic.between(2.7, 3.15).all()


def test_agn_above_kewley_and_classification_rules(cat):
    agn = cat[cat["ptype"] == "agn"]
    assert (agn["bpt_y_nlr"] > kewley01(agn["bpt_x_nlr"])).all()
    s_ha = cat["Halpha_flux_meas"] / cat["Halpha_flux_err"]
    s_hb = cat["Hbeta_flux_meas"] / cat["Hbeta_flux_err"]
    em = (s_ha > 3) & (s_hb > 3) & (cat["ptype"] != "blagn")
    assert set(cat.loc[em, "class"].astype(str)) <= {"emission_line", "narrow_line_agn"}
    assert set(cat.loc[~em & (cat["ptype"] != "blagn"), "class"].astype(str)) <= {"absorption", "quiescent"}
    x = np.log10(cat.loc[em, "NII_6583_flux_meas"].clip(lower=1e-3) / cat.loc[em, "Halpha_flux_meas"])
    y = np.log10(cat.loc[em, "OIII_5007_flux_meas"].clip(lower=1e-3) / cat.loc[em, "Hbeta_flux_meas"])
    assert ((y > kewley01(x)) == (cat.loc[em, "class"] == "narrow_line_agn")).all()
    assert (cat.loc[cat["ptype"] == "blagn", "class"] == "broad_line_agn").all()
    # star-forming galaxies mostly land below the Kewley line
    sf_em = em & (cat["ptype"] == "star_forming")
    assert (cat.loc[sf_em, "class"] == "emission_line").mean() > 0.97


def test_measured_fluxes_scatter_with_their_errors(cat):
    pull = (cat["Halpha_flux_meas"] - cat["Halpha_flux"]) / cat["Halpha_flux_err"]
    assert pull.std() == pytest.approx(1.0, abs=0.03)
    assert abs(pull.mean()) < 0.03


def test_quenched_fraction_rises_with_mass(cat):
    q = cat["ptype"] == "quenched"
    lo = q[cat["log_mass"] < 10].mean()
    hi = q[cat["log_mass"] > 11].mean()
    assert hi > 0.7 and lo < 0.2
