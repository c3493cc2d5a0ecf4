"""The MZR from posterior draws against the true-flux O3N2 on toy cases with known answers."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from specdenoise.evaluation.mzr_interim import CV_FACTORS, heldout_loglik, interim_densities
from specdenoise.evaluation.mzr_posterior import posterior_mzr, reweighted_row
from specdenoise.evaluation.mzr_truth import MZR_LINES


def _fit(spectra):
    """A 'fitter' for toy spectra whose pixels are the four line fluxes themselves."""
    s = np.asarray(spectra, dtype=float)
    return {ln: {"flux": s[:, i], "ok": s[:, i] > 0} for i, ln in enumerate(MZR_LINES)}


class _Draws:
    """Known posteriors: draws are ``truth * exp(spread * N(0, 1))`` per line; the mean is ``mean``."""

    def __init__(self, truth, spread, mean=None):
        self.truth, self.spread, self.mean = truth, spread, mean

    def sample(self, x, n, seed, ivar=None, calibrated=True):
        rng = np.random.default_rng(seed)
        return self.truth[None] * np.exp(self.spread * rng.standard_normal((n, *self.truth.shape)))

    def sample_prior(self, n, seed):
        """The population's spectra, resampled: an interim prior that knows nothing of mass."""
        rng = np.random.default_rng(seed)
        return self.truth[rng.integers(0, len(self.truth), n)] * np.exp(0.1 * rng.standard_normal((n, 4)))

    def denoise_given(self, x, ivar=None):
        return self.truth if self.mean is None else np.broadcast_to(self.mean, self.truth.shape)


@pytest.fixture(scope="module")
def galaxies():
    rng = np.random.default_rng(0)
    n = 3000
    lm = rng.uniform(9, 11, n)
    ls = 0.8 * (lm - 10) + 0.3 * rng.standard_normal(n)
    o3 = 0.5 - 0.8 * (lm - 10) + 0.4 * (ls - 0.8 * (lm - 10)) + 0.15 * rng.standard_normal(n)  # FMR-like
    ha = 10 ** rng.uniform(1, 2, n)
    order = {"Halpha": ha, "Hbeta": ha / 2.86, "NII_6583": 10**-0.3 * ha}
    order["OIII_5007"] = 10**o3 * order["Hbeta"] * order["NII_6583"] / order["Halpha"]
    flux = np.stack([order[ln] for ln in MZR_LINES], axis=1)
    return flux, order, lm, ls


def test_exact_draws_recover_the_truth(galaxies):
    flux, true, lm, ls = galaxies
    model = _Draws(flux, 0.0)
    res = posterior_mzr(
        model, flux, np.ones_like(flux), _fit, true, lm, ls, 3, 1, interim_densities(model, _fit, 2, 20000)
    )
    assert res["diff"]["scatter"] == pytest.approx(0, abs=1e-9) and res["diff"]["rho"] == pytest.approx(0, abs=1e-9)
    assert res["meets"] and res["draws"]["valid_fraction"] == 1.0


def test_prior_mean_point_estimates_lose_the_scatter_and_noisy_draws_widen_it(galaxies):
    flux, true, lm, ls = galaxies
    mean = flux.mean(axis=0)
    model = _Draws(flux, 0.2, mean=mean)
    res = posterior_mzr(
        model, flux, np.ones_like(flux), _fit, true, lm, ls, 5, 2, interim_densities(model, _fit, 3, 20000)
    )
    assert res["posterior_mean"]["scatter"] == pytest.approx(0, abs=1e-9)  # one O/H for every galaxy
    # draws 0.2 in ln of each line around the truth: O/H noise 0.32 x 2 x 0.087 = 0.056 dex in quadrature
    assert res["draws"]["scatter"] == pytest.approx(np.hypot(res["truth"]["scatter"], 0.056), abs=0.01)
    assert not res["meets"] and res["draws"]["n_draws"] == 5


def test_the_point_estimate_is_left_out_when_not_asked_for(galaxies):
    flux, true, lm, ls = galaxies

    class _NoPoint(_Draws):
        def denoise_given(self, x, ivar=None):
            raise AssertionError("the posterior mean was computed")

    model = _NoPoint(flux, 0.0)
    interims = interim_densities(model, _fit, 2, 20000)
    res = posterior_mzr(model, flux, np.ones_like(flux), _fit, true, lm, ls, 3, 1, interims, point_estimate=False)
    assert "posterior_mean" not in res and res["meets"]


class _LinkedPrior:
    """A prior whose O3N2 falls with log H-alpha (slope -1, scatter 0.2): O/H rises with it, +0.32 dex per dex."""

    def sample_prior(self, n, seed):
        rng = np.random.default_rng(seed)
        log_ha = 1.5 + 0.3 * rng.standard_normal(n)
        o3n2 = 0.5 - (log_ha - 1.5) + 0.2 * rng.standard_normal(n)
        ha = 10**log_ha
        order = {"Halpha": ha, "Hbeta": ha / 2.86, "NII_6583": 10**-0.3 * ha}
        order["OIII_5007"] = 10**o3n2 * order["Hbeta"] * order["NII_6583"] / order["Halpha"]
        return np.stack([order[ln] for ln in MZR_LINES], axis=1)


def _log_ha(spectra, fits):
    return np.log10(fits["Halpha"]["flux"])


def test_the_interim_density_is_the_priors_conditional_given_the_covariate():
    """Conditional on the covariate the KDE interim recovers the known Gaussian (median slope +0.32 dex
    per dex, sd 0.064 dex, a little wider from the kernel); without one (NaN) or outside the prior's
    range it is the marginal (sd 0.115 dex)."""
    interim = interim_densities(_LinkedPrior(), _fit, 3, 8000, _log_ha, factors=(1.0, 0.5))
    assert list(interim.densities) == [1.0, 0.5] and interim.factor == 1.0 and interim.heldout == {}
    logpdf = interim.densities[1.0]
    grid = np.linspace(7.9, 9.5, 801)

    def moments(c):  # median and half the 16-84 % width (the floor's far tails move a variance)
        cdf = np.cumsum(np.exp(logpdf(grid, np.full(grid.shape, c))))
        q16, q50, q84 = np.interp([0.16, 0.5, 0.84], cdf / cdf[-1], grid)
        return float(q50), float(q84 - q16) / 2

    (m_lo, s_lo), (m_hi, s_hi) = moments(1.3), moments(1.7)
    assert m_hi - m_lo == pytest.approx(0.32 * 0.4, abs=0.02)
    assert m_lo == pytest.approx(8.73 - 0.32 * 0.7, abs=0.01)
    assert 0.06 < s_lo < 0.072 and 0.06 < s_hi < 0.072
    assert moments(np.nan)[1] == pytest.approx(0.115, abs=0.01)
    assert moments(5.0)[1] == pytest.approx(0.115, abs=0.01)  # outside the prior's range: the marginal


class _ClusteredPrior(_LinkedPrior):
    """O3N2 at one of five values 0.1 apart with a 0.01 spread, whatever the H-alpha: a density that
    Scott's rule (made for one Gaussian) smooths into one bump."""

    def sample_prior(self, n, seed):
        rng = np.random.default_rng(seed)
        ha = 10 ** (1.5 + 0.3 * rng.standard_normal(n))
        o3n2 = 0.1 * rng.integers(0, 5, n) + 0.01 * rng.standard_normal(n)
        order = {"Halpha": ha, "Hbeta": ha / 2.86, "NII_6583": 10**-0.3 * ha}
        order["OIII_5007"] = 10**o3n2 * order["Hbeta"] * order["NII_6583"] / order["Halpha"]
        return np.stack([order[ln] for ln in MZR_LINES], axis=1)


@pytest.mark.parametrize(("prior", "lo", "hi"), [(_LinkedPrior, 0.7, 1.4), (_ClusteredPrior, 0.25, 0.25)])
def test_the_interim_bandwidth_is_the_one_the_held_out_draws_like_best(prior, lo, hi, caplog):
    """A Gaussian conditional is best served near Scott's bandwidth; narrow clusters need a much smaller one
    (the grid's smallest, which warns). The interim is built at the chosen bandwidth and at half and twice it."""
    with caplog.at_level(logging.WARNING, logger="specdenoise.evaluation.mzr_posterior"):
        interim = interim_densities(prior(), _fit, 4, 20000, _log_ha)
    assert ("edge of its grid" in caplog.text) == (interim.factor == min(CV_FACTORS))
    assert list(interim.heldout) == list(CV_FACTORS) and interim.n_draws == 20000
    best = max(interim.heldout, key=interim.heldout.get)
    assert lo <= best <= hi and list(interim.densities) == pytest.approx([best, best / 2, best * 2])
    assert interim_densities(prior(), _fit, 4, 20000, _log_ha).heldout == interim.heldout  # seeded


def test_held_out_likelihood_prefers_the_true_density_width():
    """Draws from N(0, 1) in O/H with an uninformative feature: the held-out mean log density is highest
    near Scott's bandwidth, and equals minus the Gaussian's entropy (-1.419 nats) to within the kernel's widening."""
    rng = np.random.default_rng(5)
    oh, c = 8.5 + rng.standard_normal(50000), rng.standard_normal(50000)
    ll = heldout_loglik(oh, c, (0.25, 1.0, 4.0), 6)
    assert ll[1.0] > ll[0.25] and ll[1.0] > ll[4.0]
    assert ll[1.0] == pytest.approx(-0.5 * np.log(2 * np.pi) - 0.5, abs=0.03)


def test_the_report_says_how_the_bandwidth_was_chosen_and_how_far_the_draws_converged(galaxies):
    """Exact draws: the first half of the draws gives the same MZR (a step of 0, converged); the markdown
    gives the held-out likelihood per bandwidth, the chosen one, and that step."""
    from specdenoise.evaluation.mzr_posterior_report import markdown

    flux, true, lm, ls = galaxies
    model = _Draws(flux, 0.0)
    interim = interim_densities(model, _fit, 2, 20000)
    res = posterior_mzr(model, flux, np.ones_like(flux), _fit, true, lm, ls, 8, 1, interim)
    hier = res["hierarchical"]
    assert hier["half_draws"]["n_draws"] == 4 and hier["draws_converged"]
    assert hier["half_draws"]["step"]["scatter"] == pytest.approx(0, abs=1e-9)
    assert res["interim"]["factor"] == interim.factor and set(res["interim"]["heldout_loglik"]) == {
        f"{f:g}" for f in CV_FACTORS
    }
    text = markdown(res, "models:/toy@champion")
    assert f"chosen x{interim.factor:g} of Scott's" in text and "From the first 4 draws per galaxy only" in text
    assert "+0.0000" in text  # the chosen bandwidth's held-out likelihood minus the best


def test_every_population_form_is_fitted_and_auto_uses_the_lowest_aic(galaxies):
    """``form="auto"`` reports each form of the SFR term and uses the one of lowest AIC (its delta is 0,
    the others' are not negative); a named form is used as given; the markdown lists them."""
    from specdenoise.evaluation.mzr_posterior_report import markdown
    from specdenoise.evaluation.population import SFR_FORMS

    flux, true, lm, ls = galaxies
    model = _Draws(flux, 0.05)
    interim = interim_densities(model, _fit, 2, 20000)
    res = posterior_mzr(model, flux, np.ones_like(flux), _fit, true, lm, ls, 8, 1, interim)
    hier = res["hierarchical"]
    assert set(hier["forms"]) == set(SFR_FORMS) and hier["form"] in SFR_FORMS
    assert hier["forms"][hier["form"]]["aic_delta"] == 0 and min(v["aic_delta"] for v in hier["forms"].values()) == 0
    assert (
        hier["population"]["form"] == hier["form"]
        and res["hierarchical_marginal"]["population"]["form"] == hier["form"]
    )
    assert res["hierarchical_mass_only"]["population"]["form"] is None
    assert hier["rho"] == hier["forms"][hier["form"]]["rho"]
    fixed = posterior_mzr(model, flux, np.ones_like(flux), _fit, true, lm, ls, 8, 1, interim, form="linear")
    assert fixed["hierarchical"]["form"] == "linear" and fixed["hierarchical"]["population"]["form"] == "linear"
    md = markdown(res, "models:/toy@champion")
    assert "Scatter / rho +- sd (AIC - the lowest) by form: linear:" in md


def test_each_reweighted_row_states_its_difference_over_its_sd(galaxies):
    """Every re-weighted row carries ``z`` (difference from the truth over the stated sd, which holds the
    population's uncertainty and so is at least the draws' own) and ``consistent`` (both within 2 sd);
    the markdown says so and what the +- holds."""
    from specdenoise.evaluation.mzr_posterior import CONSISTENT_Z
    from specdenoise.evaluation.mzr_posterior_report import markdown

    flux, true, lm, ls = galaxies
    model = _Draws(flux, 0.05)
    interims = interim_densities(model, _fit, 2, 20000)
    res = posterior_mzr(model, flux, np.ones_like(flux), _fit, true, lm, ls, 8, 1, interims)
    # what the further noise realisations keep: the same row, without the other forms and interims
    form = res["hierarchical"]["form"]
    alone = reweighted_row(model, flux, np.ones_like(flux), _fit, true, lm, ls, 8, 1, interims, None, form, 0)
    for k in ("scatter", "rho", "scatter_sd", "rho_sd", "diff", "z", "consistent"):
        assert alone[k] == res["hierarchical"][k]
    # with refits on resampled draws the sd adds their spread in quadrature; the value stays
    boot = posterior_mzr(model, flux, np.ones_like(flux), _fit, true, lm, ls, 8, 1, interims, n_boot=4)["hierarchical"]
    assert boot["rho"] == res["hierarchical"]["rho"] and boot["rho_sd_population"] == res["hierarchical"]["rho_sd"]
    assert boot["rho_sd"] == pytest.approx(np.hypot(boot["rho_sd_population"], boot["rho_sd_mc"]))
    assert boot["rho_sd_mc"] > 0 and boot["z"]["rho"] == pytest.approx(boot["diff"]["rho"] / boot["rho_sd"])
    again = reweighted_row(model, flux, np.ones_like(flux), _fit, true, lm, ls, 8, 1, interims, None, form, 4)
    assert again["rho_sd"] == boot["rho_sd"] and again["boot_shift"] == boot["boot_shift"]
    assert "from refits on draws resampled" in markdown({**res, "hierarchical": boot}, "models:/toy@champion")
    for key in ("hierarchical", "hierarchical_mass_only", "hierarchical_marginal"):
        h = res[key]
        assert h["z"]["rho"] == pytest.approx(h["diff"]["rho"] / h["rho_sd"])
        assert h["consistent"] == (max(abs(v) for v in h["z"].values()) <= CONSISTENT_Z)
        assert h["rho_sd"] >= h["rho_sd_draws"] and h["population"]["laplace"]
    md = markdown(res, "models:/toy@champion")
    assert "drawn from the Laplace approximation" in md and "diff / sd " in md
    for converged in (True, False):  # a half-draws step over half the targets: no recovery, whatever the sd says
        res["hierarchical"]["draws_converged"] = converged
        said = "the draws have not converged, so this is no recovery" in markdown(res, "models:/toy@champion")
        assert said is not converged


def _rows(n: int, sd_true: float, sd_stated: float, bias: float, seed: int) -> list[dict]:
    """Re-weighted rows of ``n`` noise realisations whose rho misses the truth by ``bias`` plus
    N(0, ``sd_true``) and states ``sd_stated``; the scatter always by N(0, 0.002), stating 0.002."""
    rng = np.random.default_rng(seed)
    rows = []
    for d_sc, d_rho in zip(0.002 * rng.standard_normal(n), bias + sd_true * rng.standard_normal(n), strict=True):
        diff = {"scatter": float(d_sc), "rho": float(d_rho)}
        z = {"scatter": float(d_sc) / 0.002, "rho": float(d_rho) / sd_stated}
        row = {"scatter": 0.1 + d_sc, "scatter_sd": 0.002, "rho": -0.4 + d_rho, "rho_sd": sd_stated}
        rows.append(row | {"diff": diff, "z": z})
    return rows


def test_noise_realisations_show_whether_the_stated_sd_and_the_mean_are_right():
    """Over many realisations the rms of diff / stated sd is 1 where the stated sd is the real spread
    and 2 where it is half of it; the mean difference recovers a known bias to its standard error."""
    from specdenoise.evaluation.mzr_posterior import across_realisations

    right = across_realisations(_rows(400, 0.04, 0.04, 0.0, 1))
    assert right["rho"]["rms_z"] == pytest.approx(1.0, abs=0.1) and right["scatter"]["rms_z"] == pytest.approx(
        1, abs=0.1
    )
    assert right["rho"]["sd"] == pytest.approx(0.04, rel=0.1) and right["meets_on_average"]
    assert abs(right["rho"]["mean_diff"]) < 3 * right["rho"]["mean_diff_se"] and right["rho"]["mean_diff_se"] < 0.003
    narrow = across_realisations(_rows(400, 0.04, 0.02, 0.0, 2))
    assert narrow["rho"]["rms_z"] == pytest.approx(2.0, abs=0.2)
    biased = across_realisations(_rows(400, 0.04, 0.04, -0.12, 3))
    assert biased["rho"]["mean_diff"] == pytest.approx(-0.12, abs=3 * biased["rho"]["mean_diff_se"])
    assert not biased["meets_on_average"] and biased["rho"]["n_within"] < 0.1 * 400
    assert right["rho"]["n_within"] == sum(abs(d) <= 0.05 for d in right["rho"]["diff"])


def test_a_noise_realisation_has_each_pixels_ivar_and_its_own_seed():
    from specdenoise.evaluation.mzr_posterior import noise_realisation

    rng = np.random.default_rng(0)
    clean = rng.uniform(0.5, 2.0, (200, 300))
    ivar = rng.uniform(10.0, 1000.0, clean.shape)
    ivar[:, :10] = 0.0  # pixels without ivar stay noise-free
    a, b = noise_realisation(clean, ivar, [14, 1]), noise_realisation(clean, ivar, [14, 2])
    z = ((a - clean) * np.sqrt(ivar))[:, 10:]
    assert np.std(z) == pytest.approx(1.0, abs=0.01) and abs(np.mean(z)) < 0.01
    assert np.array_equal(a[:, :10], clean[:, :10]) and not np.allclose(a, b)
    assert np.array_equal(a, noise_realisation(clean, ivar, [14, 1]))


def test_the_report_shows_the_realisations_when_there_are_several(galaxies):
    from specdenoise.evaluation.mzr_posterior import across_realisations
    from specdenoise.evaluation.mzr_posterior_report import markdown

    flux, true, lm, ls = galaxies
    model = _Draws(flux, 0.05)
    res = posterior_mzr(
        model, flux, np.ones_like(flux), _fit, true, lm, ls, 8, 1, interim_densities(model, _fit, 2, 20000)
    )
    assert "Over noise realisations" not in markdown(res, "models:/toy@champion")
    res["noise_realisations"] = across_realisations(_rows(3, 0.04, 0.04, 0.0, 4))
    md = markdown(res, "models:/toy@champion")
    assert "### Over noise realisations (k = 1)" in md and "rms of diff / stated sd" in md
    assert md.count("| 2 | ") == 1  # one row per realisation
    rows = _rows(2, 0.04, 0.04, 0.0, 5)
    rows[1] |= {"scatter_sd": 0.0, "z": {"scatter": float("inf"), "rho": rows[1]["z"]["rho"]}}  # no stated sd
    res["noise_realisations"] = across_realisations(rows)
    assert res["noise_realisations"]["scatter"]["rms_z"] == float("inf") and "| +inf / " in markdown(res, "toy")
