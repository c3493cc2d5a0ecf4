"""The posterior family: exact Gaussian posterior on a toy problem with a known answer, coverage,
data following at high S/N, masks, save/load and the out-of-domain flag."""

from __future__ import annotations

import numpy as np
import pytest
from tests.faults.harness import assert_fails, cli, fingerprint

from specdenoise.config import PreprocessConfig, UniverseConfig
from specdenoise.data.preprocess import rest_grid
from specdenoise.errors import EXIT_USAGE, ConfigError
from specdenoise.models import get_family, load_model
from specdenoise.models.base import TrainingData
from specdenoise.models.linear import PCADenoiser
from specdenoise.models.posterior import OOD_BITS, PosteriorDenoiser
from specdenoise.models.posterior_calibrate import calibrate
from specdenoise.models.posterior_noise import mixed_observations, observe_normalised
from specdenoise.models.posterior_sim import clean_source, draw_clean

P, Q = 30, 3


def _toy(seed: int = 0, k: int = 1) -> PosteriorDenoiser:
    rng = np.random.default_rng(seed)
    mu = 1.0 + 0.3 * rng.standard_normal((k, P))
    w = 0.5 * rng.standard_normal((k, P, Q))
    d = 0.05 + 0.05 * rng.random((k, P))
    m = PosteriorDenoiser(Q, {"fixed_scale": 1.0, "rel_floor": 0.0})
    m.set_prior(mu, w, d, np.zeros(k))
    return m


def _noise(rng: np.random.Generator, n: int) -> np.ndarray:
    ivar = 1.0 / (0.1 + rng.random((n, P))) ** 2  # heteroscedastic
    ivar[:, 5:9] = 0.0  # a masked gap
    return ivar


def test_registered_with_capabilities():
    cls = get_family("posterior")
    assert cls.has_posterior and cls.noise_aware and not cls.iterative


def test_prior_draws_have_the_mixtures_moments():
    m = _toy(seed=3, k=2)
    a = m.arrays
    m.arrays["log_pi"] = np.log(np.array([0.25, 0.75]))
    draws = m.sample_prior(40000, seed=4)
    mean = 0.25 * a["mu"][0] + 0.75 * a["mu"][1]
    np.testing.assert_allclose(draws.mean(0), mean, atol=0.03)
    cov = sum(
        pi * (a["w"][k] @ a["w"][k].T + np.diag(a["d"][k]) + np.outer(a["mu"][k] - mean, a["mu"][k] - mean))
        for k, pi in enumerate((0.25, 0.75))
    )
    np.testing.assert_allclose(np.cov(draws, rowvar=False), cov, atol=0.05 * np.max(np.diag(cov)))
    np.testing.assert_array_equal(draws, m.sample_prior(40000, seed=4))


def test_exact_posterior_matches_closed_form():
    m = _toy()
    rng = np.random.default_rng(1)
    a = m.arrays
    cov = a["w"][0] @ a["w"][0].T + np.diag(a["d"][0])
    ivar = _noise(rng, 4)
    y = rng.multivariate_normal(a["mu"][0], cov, 4) + rng.standard_normal((4, P)) / np.sqrt(ivar.clip(1e-12))
    y[ivar == 0] = 123.0  # masked values must not matter
    mean, sd, _ = m.predict(y, ivar, calibrated=False)
    cinv = np.linalg.inv(cov)
    for i in range(4):
        post = np.linalg.inv(cinv + np.diag(ivar[i]))
        exact = post @ (cinv @ a["mu"][0] + ivar[i] * np.where(ivar[i] > 0, y[i], 0.0))
        np.testing.assert_allclose(mean[i], exact, rtol=1e-8, atol=1e-8)
        np.testing.assert_allclose(sd[i], np.sqrt(np.diag(post)), rtol=1e-8)
    # samples have the exact covariance
    draws = m.sample(y[:1], 4000, seed=2, ivar=ivar[:1])[:, 0]
    post = np.linalg.inv(cinv + np.diag(ivar[0]))
    np.testing.assert_allclose(np.cov(draws, rowvar=False), post, atol=0.08 * np.max(np.diag(post)))


def test_pixel_coverage_is_68_percent_on_the_toy():
    m = _toy(seed=3, k=2)
    rng = np.random.default_rng(4)
    a = m.arrays
    n = 1500
    comp = rng.integers(0, 2, n)
    x = np.empty((n, P))
    for k in range(2):
        sel = comp == k
        cov = a["w"][k] @ a["w"][k].T + np.diag(a["d"][k])
        x[sel] = rng.multivariate_normal(a["mu"][k], cov, sel.sum())
    ivar = _noise(rng, n)
    y = x + rng.standard_normal((n, P)) / np.sqrt(ivar.clip(1e-12))
    mean, sd, _ = m.predict(y, ivar, calibrated=False)
    inside = np.abs(x - mean) < sd
    assert abs(inside.mean() - 0.6827) < 0.01
    assert abs(inside[:, 5:9].mean() - 0.6827) < 0.02  # masked pixels: prior-conditional, still right


def _miscalibrated_toy_data(m: PosteriorDenoiser, rng: np.random.Generator, n: int):
    """Truth drawn with twice the model's latent spread (so the raw posterior is too narrow where the
    prior dominates, i.e. by a factor that depends on the spectrum's S/N), noise level log-uniform per
    spectrum over 3 decades times a heteroscedastic per-pixel shape."""
    a = m.arrays
    zl = rng.standard_normal((n, Q))
    x = a["mu"][0] + 2.0 * zl @ a["w"][0].T + np.sqrt(a["d"][0]) * rng.standard_normal((n, P))
    level = np.exp(rng.uniform(np.log(0.03), np.log(30.0), n))
    sig = level[:, None] * (0.3 + rng.random((n, P)))
    y = x + sig * rng.standard_normal((n, P))
    return {"flux": y, "ivar": 1.0 / sig**2, "truth": x}, level


def test_calibration_fixes_a_spread_that_is_off_by_a_spectrum_snr_dependent_factor():
    m = _toy(seed=9)
    rng = np.random.default_rng(10)
    obs, _ = _miscalibrated_toy_data(m, rng, 8000)
    m.arrays.update(calibrate(m, obs, np.zeros(8000)))
    test, level = _miscalibrated_toy_data(m, rng, 4000)  # held out
    mean, raw, _ = m.predict(test["flux"], test["ivar"], calibrated=False)
    _, sd, _ = m.predict(test["flux"], test["ivar"])
    edges = np.quantile(level, [0, 0.25, 0.5, 0.75, 1.0])
    raw_cov, cov = [], []
    for lo, hi in zip(edges[:-1], edges[1:], strict=True):
        sel = (level >= lo) & (level <= hi)
        err = np.abs(test["truth"][sel] - mean[sel])
        raw_cov.append(np.mean(err <= raw[sel]))
        cov.append(np.mean(err <= sd[sel]))
    assert min(raw_cov) < 0.6  # the raw posterior is off where the prior dominates ...
    np.testing.assert_allclose(cov, 0.6827, atol=0.025)  # ... and calibrated in every S/N bin


def test_line_pixel_calibration_is_fitted_per_emission_power_bin():
    """Two components, one with an emission line at pixel 15 whose strength varies ~2x more in the
    data than the prior says: the raw spread there is too narrow for line spectra only. The
    per-wavelength factor, fitted per emission-line-power bin, calibrates that pixel for line and
    line-free spectra alike (pooled over all spectra it gave 0.57 and 0.72)."""
    pix = np.arange(P)
    base = 1.0 + 0.3 * np.sin(pix / 5.0)
    mu = np.stack([base, base + 2.0 * (pix == 15)])
    w = np.stack([0.3 * np.cos(np.outer(pix, np.arange(Q)) / 9.0)] * 2)
    m = PosteriorDenoiser(Q, {"fixed_scale": 1.0, "rel_floor": 0.0})
    m.set_prior(mu, w, np.full((2, P), 0.01), np.zeros(2))
    rng = np.random.default_rng(12)

    def data(n):
        line = np.arange(n) % 3 == 0
        x = mu[line.astype(int)] + rng.standard_normal((n, Q)) @ w[0].T + 0.1 * rng.standard_normal((n, P))
        x[line, 15] += 0.2 * rng.standard_normal(line.sum())  # sd 0.1 in the prior, ~0.22 in the data
        sig = np.exp(rng.uniform(np.log(0.03), np.log(0.3), n))[:, None] * np.ones(P)
        return {"flux": x + sig * rng.standard_normal((n, P)), "ivar": 1.0 / sig**2, "truth": x}, line

    obs, _ = data(9000)
    m.arrays.update(calibrate(m, obs, np.zeros(9000)))
    assert len(m.arrays["calib_pixel"]) == 3 * len(m.arrays["calib_log_snr"])  # one block per bin
    test, line = data(6000)
    mean, raw, _ = m.predict(test["flux"], test["ivar"], calibrated=False, scale="input")
    _, sd, _ = m.predict(test["flux"], test["ivar"], scale="input")
    err = np.abs(test["truth"][:, 15] - mean[:, 15])
    assert np.mean(err[line] <= raw[line, 15]) < 0.55  # the raw spread misses the line ...
    for group in (line, ~line):  # ... the calibrated one holds 68 % for both groups
        assert abs(np.mean(err[group] <= sd[group, 15]) - 0.6827) < 0.045


def test_follows_the_data_at_high_snr_and_ignores_masked_values():
    m = _toy(seed=5)
    rng = np.random.default_rng(6)
    y = m.arrays["mu"][0][None] + 0.5 * np.sin(np.arange(P))[None]  # not a typical prior draw
    ivar = np.full((1, P), 1e6)
    out = m.denoise(y, ivar)
    assert np.max(np.abs(out - y) * np.sqrt(ivar)) < 3.0
    ivar_m = _noise(rng, 1)
    y2 = y.copy()
    y2[0, 5:9] = -50.0
    np.testing.assert_allclose(m.denoise(y, ivar_m), m.denoise(y2, ivar_m), rtol=1e-6)
    assert np.all(np.isfinite(m.denoise(y2, ivar_m)))


def test_save_load_round_trip(tmp_path):
    m = _toy(seed=7, k=2)
    rng = np.random.default_rng(8)
    ivar = _noise(rng, 3)
    y = m.arrays["mu"][0] + rng.standard_normal((3, P))
    m.save(tmp_path / "m")
    back = load_model(tmp_path / "m")
    assert isinstance(back, PosteriorDenoiser)
    np.testing.assert_array_equal(back.denoise(y, ivar), m.denoise(y, ivar))
    assert (tmp_path / "m" / "posterior.npz").exists()


TINY = {"n_prior": 400, "n_kmeans": 400, "n_components": 2, "n_calib": 0, "n_scale": 3, "chunk": 400}
TINY |= {"halpha_levels": (-2.0,), "level_min": 1}  # a weak-line and a strong-line component


def _training_data(meta: dict) -> TrainingData:
    z = np.zeros((1, 825), np.float32)
    return TrainingData(z, z, z, z, z, z, rest_grid(PreprocessConfig())[1], np.full(825, 0.04), meta=meta)


@pytest.fixture(scope="module")
def small_universe_model():
    ucfg, pcfg = UniverseConfig(), PreprocessConfig()
    m = PosteriorDenoiser(6, dict(TINY))
    m.fit(_training_data({"clean_stream": clean_source(ucfg, pcfg)}), None, seed=11)  # the pipeline's path
    assert m.arrays["fit_info"][0] == 400 and m.arrays["w"].shape == (2, 825, 6 + 4)  # latent_dim + line_rank
    line_cols = m.arrays["w"][:, :, 6:]
    assert np.any(line_cols[0] != 0) and np.all(line_cols[1] == 0)  # none in the strongest H-alpha level
    clean, cat = draw_clean(ucfg, pcfg, 150, seed=11, stream=1)
    wave = rest_grid(pcfg)[1]
    obs = mixed_observations(clean, wave, cat["z"].to_numpy(), np.random.default_rng(0), snr_range=(3.0, 30.0))
    m.arrays.update(calibrate(m, obs, cat["z"].to_numpy()))
    return m, clean, cat, wave


def test_fit_needs_a_clean_source():
    with pytest.raises(ConfigError, match="train.posterior"):
        PosteriorDenoiser(4, dict(TINY)).fit(_training_data({}), None, seed=0)


def test_ood_flag_fires_on_a_star_not_on_galaxies(small_universe_model):
    m, clean, cat, wave = small_universe_model
    rng = np.random.default_rng(1)
    z = cat["z"].to_numpy()[:40]
    gal = observe_normalised(clean[:40], wave, z, np.full(40, 10.0), "white", rng)
    # an A star: a steep blue continuum with deep, broad Balmer absorption
    star = (wave / 5000.0) ** -3.0
    for line in (6563.0, 4861.0, 4340.0, 4102.0):
        star *= 1 - 0.6 * np.exp(-0.5 * ((wave - line) / 15.0) ** 2)
    star = star / np.linalg.norm(star)
    st = observe_normalised(np.repeat(star[None], 5, 0), wave, z[:5], np.full(5, 10.0), "white", rng)
    flags_gal = m.ood_flags(gal["flux"], gal["ivar"], z)
    flags_star = m.ood_flags(st["flux"], st["ivar"], z[:5])
    assert np.all(flags_star & OOD_BITS["chi2"])
    assert np.mean(flags_gal != 0) <= 0.1
    assert m.ood_flags(gal["flux"][:1], gal["ivar"][:1], np.array([0.3]))[0] & OOD_BITS["redshift"]


def test_bench_posterior_refuses_a_model_that_is_not_noise_aware(tmp_path):
    pca = PCADenoiser(2)
    pca.mean_in = pca.mean_out = np.zeros(P)
    pca.left, pca.right = np.zeros((P, 2)), np.zeros((2, P))
    pca.save(tmp_path / "pca")
    before = fingerprint(tmp_path)
    out = tmp_path / "posterior.json"
    res = cli("bench", "posterior", "--model", tmp_path / "pca", "--out", out, "--md", tmp_path / "p.md")
    assert_fails(res, EXIT_USAGE, "--model", str(tmp_path / "pca"))
    assert not out.exists() and fingerprint(tmp_path) == before


def _dense_reference(m: PosteriorDenoiser, y: np.ndarray, ivar: np.ndarray, amplitudes):
    """Slow, obviously correct posterior: every (component, amplitude, log width) term that
    ``amplitudes(i)`` lists for spectrum ``i`` as a full-covariance Gaussian over the unmasked
    pixels, weighted by its exact evidence times its width in log s; mixture mean and sd, the
    standardised chi^2 of the highest-evidence term and the unit-norm mean."""
    from scipy.stats import multivariate_normal

    a = m.arrays
    means, sds, chis, units = [], [], [], []
    for i in range(len(y)):
        good = ivar[i] > 0
        logw, logv, mk, vk, chi, amp = [], [], [], [], [], []
        for k, s, width in amplitudes(i):
            prior_cov = a["w"][k] @ a["w"][k].T + np.diag(a["d"][k])
            cx = s * s * prior_cov  # covariance of the clean spectrum s x0
            cy = cx[np.ix_(good, good)] + np.diag(1.0 / ivar[i][good])
            r = y[i][good] - s * a["mu"][k][good]
            logw.append(multivariate_normal(np.zeros(good.sum()), cy).logpdf(r) + a["log_pi"][k])
            logv.append(width)
            gain = cx[:, good] @ np.linalg.inv(cy)
            mk.append(s * a["mu"][k] + gain @ r)
            vk.append(np.diag(cx - gain @ cx[good, :]))
            quad = r @ np.linalg.solve(cy, r)
            chi.append((quad - good.sum()) / np.sqrt(2.0 * good.sum()))
            amp.append(s)
        lw = np.array(logw) + np.array(logv)
        w = np.exp(lw - lw.max())
        w /= w.sum()
        mean = w @ np.array(mk)
        means.append(mean)
        sds.append(np.sqrt(w @ (np.array(vk) + np.array(mk) ** 2) - mean**2))
        chis.append(chi[int(np.argmax(logw))])
        units.append(w @ (np.array(mk) / np.array(amp)[:, None]))  # E[x0 | y], the unit-norm spectrum
    return np.array(means), np.array(sds), np.array(chis), np.array(units)


def _mixture_problem(snr_scale: float, n: int = 6):
    rng = np.random.default_rng(21)
    k = 4
    mu = 1.0 + 0.3 * rng.standard_normal(P) + 0.02 * rng.standard_normal((k, P))  # overlapping components
    mu /= np.linalg.norm(mu, axis=1, keepdims=True)
    w = 0.04 * rng.standard_normal((k, P, Q))
    d = 1e-4 * (1 + rng.random((k, P)))
    m = PosteriorDenoiser(Q, {"n_scale": 5, "rel_floor": 0.0, "mismatch": [0.0]})
    m.set_prior(mu, w, d, np.log(rng.random(k) + 0.5))
    comp = rng.integers(0, k, n)
    x = np.array([rng.multivariate_normal(mu[c], w[c] @ w[c].T + np.diag(d[c])) for c in comp])
    ivar = _noise(rng, n) * (30.0 * snr_scale) ** 2
    y = 1.1 * x + rng.standard_normal(x.shape) / np.sqrt(ivar.clip(1e-12))
    y[ivar == 0] = 0.0
    return m, y, ivar


@pytest.mark.parametrize("snr_scale", [0.3, 1.0, 10.0])
def test_fast_path_matches_the_dense_mixture_reference(snr_scale):
    """Batched, pruned inference (posterior_infer) == the dense full-covariance mixture over the
    (component, amplitude) terms it kept, each weighted by its evidence and its amplitude cell's
    width, at low and high S/N, with masks and the marginalised amplitude."""
    m, y, ivar = _mixture_problem(snr_scale)
    t = m._terms(y, ivar)

    def kept(i):
        sel = np.flatnonzero(t.row == i)  # replaced coarse points (width 0) count for the chi^2 only
        return zip(t.comp[sel], t.s[sel], t.logv[sel], strict=True)

    mean, sd, chi = m.predict(y, ivar, calibrated=False, scale="input")
    ref_mean, ref_sd, ref_chi, ref_unit = _dense_reference(m, y, ivar, kept)
    np.testing.assert_allclose(mean, ref_mean, rtol=1e-8, atol=1e-8 * np.abs(ref_mean).max())
    np.testing.assert_allclose(sd, ref_sd, rtol=1e-7, atol=1e-9 * np.abs(ref_mean).max())
    np.testing.assert_allclose(chi, ref_chi, rtol=1e-8, atol=1e-8)
    unit = m.predict(y, ivar, calibrated=False, scale="unit")[0]
    np.testing.assert_allclose(unit, ref_unit, rtol=1e-8, atol=1e-8 * np.abs(ref_unit).max())


def _amplitude_problem(snr: float, n: int, seed: int = 5, uneven: bool = False):
    """Two components with loadings orthogonal to their unit-norm means (a unit-norm-like prior, as the
    universe prior is), spectra drawn from it at a known amplitude ``s`` (log-normal, 10 %) and
    noise at continuum S/N ``snr`` per pixel: white, or ``uneven`` (sigma rising 11-fold towards
    both ends of two arms and tilted 8-fold, like a multi-arm spectrograph)."""
    p, k = 400, 2
    rng = np.random.default_rng(seed)
    mu = (1 + 0.5 * np.sin(np.arange(p) / 30.0))[None] * (1 + 0.2 * rng.standard_normal((k, 1)))
    mu = mu + 0.05 * rng.standard_normal((k, p))
    mu /= np.linalg.norm(mu, axis=1, keepdims=True)
    w = 0.003 * rng.standard_normal((k, p, Q))
    w -= np.einsum("kp,kq->kpq", mu, np.einsum("kp,kpq->kq", mu, w))
    d = np.full((k, p), 1e-6)
    m = PosteriorDenoiser(Q, {"n_scale": 5, "rel_floor": 0.0, "mismatch": [0.0]})
    m.set_prior(mu, w, d, np.zeros(k))
    comp = rng.integers(0, k, n)
    x = mu[comp] + np.einsum("npq,nq->np", w[comp], rng.standard_normal((n, Q))) + 1e-3 * rng.standard_normal((n, p))
    s_true = np.exp(0.1 * rng.standard_normal(n))
    shape = np.ones(p)
    if uneven:
        t = np.r_[np.linspace(-1, 1, p // 2), np.linspace(-1, 1, p - p // 2)]
        shape = (1 + 10 * t**4) * np.linspace(2.0, 0.25, p)
        shape /= np.median(shape)
    sigma = x.mean() / snr * shape
    y = s_true[:, None] * x + sigma * rng.standard_normal((n, p))
    return m, y, np.broadcast_to(sigma**-2, (n, p)).copy(), np.log(s_true)


def _log_amplitude_posterior(m, y, ivar):
    """Posterior mean and sd (n,) of log s from the kept terms' weights."""
    t = m._terms(y, ivar)
    u = np.log(t.s)
    mean = np.bincount(t.row, t.resp * u, len(y))
    return mean, np.sqrt(np.clip(np.bincount(t.row, t.resp * u * u, len(y)) - mean**2, 0, None))


@pytest.mark.parametrize("snr", [0.5, 10.0])
def test_amplitude_posterior_is_calibrated_at_low_and_high_snr(snr, monkeypatch):
    """The marginalised amplitude recovers a known one: |log s - mean| < sd for 68 +- 7 % of 300
    spectra, < 2 sd for 95 +- 4 %. On the coarse grid alone (no refined points) the amplitude
    collapses onto one grid point at S/N 10 and covers < 50 %."""
    from specdenoise.models import posterior_amplitude

    m, y, ivar, truth = _amplitude_problem(snr, 300)
    mean, sd = _log_amplitude_posterior(m, y, ivar)
    z = np.abs(truth - mean) / sd
    assert 0.61 <= np.mean(z < 1) <= 0.75 and 0.91 <= np.mean(z < 2) <= 0.99
    if snr >= 10:
        monkeypatch.setattr(posterior_amplitude, "N_FINE", 0)
        mean, sd = _log_amplitude_posterior(m, y, ivar)
        assert np.mean(np.abs(truth - mean) < sd) < 0.5


def test_amplitude_posterior_is_calibrated_under_very_uneven_noise(monkeypatch):
    """Sigma varying 30-fold across the spectrum at S/N 0.3: the noise-debiased norm is insignificant
    and its fallback is biased high (by ~5x here), so the grid is centred on the inverse-variance
    weighted estimate instead; coverage 68 +- 7 %. Centred on the norm (no prior power given to the
    grid) the truth lies outside the grid's range and coverage is below 10 %."""
    from specdenoise.models import posterior, posterior_amplitude

    m, y, ivar, truth = _amplitude_problem(0.3, 300, uneven=True)
    mean, sd = _log_amplitude_posterior(m, y, ivar)
    assert 0.61 <= np.mean(np.abs(truth - mean) < sd) <= 0.75
    monkeypatch.setattr(
        posterior, "scale_grid", lambda y, iv, n, power=None: posterior_amplitude.scale_grid(y, iv, n, None)
    )
    mean, sd = _log_amplitude_posterior(m, y, ivar)
    assert np.mean(np.abs(truth - mean) < sd) < 0.1


def test_refined_amplitude_matches_the_integral_over_log_s():
    """The refined points give the posterior of log s that a 2,000-point integral over the prior's
    range gives (uniform in log s): mean within 2 % and sd within 3 % of that sd."""
    from specdenoise.models.posterior_amplitude import cell_width
    from specdenoise.models.posterior_eval import evaluate

    m, y, ivar, _ = _amplitude_problem(10.0, 4)
    pr, grid = m.prior(), m._grid(y, ivar)
    h = cell_width(grid)
    mean, sd = _log_amplitude_posterior(m, y, ivar)
    for i in range(len(y)):
        u = np.linspace(np.log(grid[i, 0]) - h[i] / 2, np.log(grid[i, -1]) + h[i] / 2, 2000)
        rep = {"y": np.repeat(y[i : i + 1], len(u), 0), "iv": np.repeat(ivar[i : i + 1], len(u), 0)}
        slog, ngood = np.full(len(u), np.log(ivar[i]).sum()), np.full(len(u), float(y.shape[1]))
        logl = [
            evaluate(pr, rep["y"], rep["iv"], slog, ngood, np.exp(u), k, 0)["loglik"] + pr.log_pi[k]
            for k in range(len(pr.mu))
        ]
        w = np.exp(np.logaddexp(*logl) - np.logaddexp(*logl).max())
        ref = w @ u / w.sum()
        ref_sd = np.sqrt(w @ (u - ref) ** 2 / w.sum())
        assert abs(mean[i] - ref) < 0.02 * ref_sd and abs(sd[i] / ref_sd - 1) < 0.03


def test_mismatch_basis_lets_unexplained_structure_through_and_keeps_the_ood_statistic():
    """A spectrum with an emission line and a tilt the prior lacks: the evidence picks a floor f > 0,
    the output follows the data there (chi^2 vs data falls towards 1, not below), the result is
    the exact Gaussian posterior with the loading [W, f B], and the OOD chi^2 stays the f = 0 one;
    the floor is offered whatever the OOD threshold. Prior draws keep f = 0 and their outputs are
    unchanged."""
    from specdenoise.models.posterior_prior import mismatch_basis

    p = 825
    rng = np.random.default_rng(31)
    wave = np.geomspace(3700.0, 7900.0, p)
    mu = (1.0 + 0.2 * np.sin(np.arange(p) / 9.0))[None]
    mu /= np.linalg.norm(mu)
    w = 0.01 * rng.standard_normal((1, p, Q))
    d = np.full((1, p), 1e-7)
    grid = [0.0, 0.003, 0.01, 0.03, 0.1, 0.3, 1.0]
    m = PosteriorDenoiser(Q, {"fixed_scale": 1.0, "mismatch": grid, "mismatch_p0": 0.9})
    m.set_prior(mu, w, d, np.zeros(1))
    m.arrays["wave"] = wave
    m.arrays["ood_chi2_max"] = np.array(1e9)  # the floor is offered below the OOD threshold too
    plain = PosteriorDenoiser(Q, {"fixed_scale": 1.0, "mismatch": [0.0]})
    plain.set_prior(mu, w, d, np.zeros(1))
    sigma = mu[0].mean() / 50.0  # S/N 50
    x = mu[0] + w[0] @ rng.standard_normal(Q)
    odd = x * (1 + 0.05 * np.linspace(-1, 1, p))
    odd += 20 * sigma * np.exp(-0.5 * (np.arange(p) - np.interp(np.log(6562.8), np.log(wave), np.arange(p))) ** 2)
    ys = np.stack([x, odd]) + sigma * rng.standard_normal((2, p))
    ivar = np.full((2, p), sigma**-2)
    mean, sd, chi = m.predict(ys, ivar, calibrated=False)
    mean0, sd0, chi0 = plain.predict(ys, ivar, calibrated=False)
    f_hat = m._terms(ys, ivar).f_hat
    assert f_hat[0] == 0 and f_hat[1] > 0
    np.testing.assert_array_equal(m.mismatch_floor(ys, ivar), np.asarray(grid)[f_hat])
    np.testing.assert_allclose(mean[0], mean0[0], rtol=1e-10)  # the prior draw is untouched
    np.testing.assert_allclose(chi, chi0, rtol=1e-10)  # OOD statistic at f = 0 for both
    red = ((mean - ys) ** 2 * ivar).mean(axis=1)
    red0 = ((mean0 - ys) ** 2 * ivar).mean(axis=1)
    assert red0[1] > 3 and 0.8 < red[1] < 1.5
    # exact Gaussian posterior with the augmented loading at the chosen floor
    wf = np.concatenate([w[0], grid[f_hat[1]] * mismatch_basis(mu, wave)[0]], axis=1)
    cov = wf @ wf.T + np.diag(d[0])
    post = np.linalg.inv(np.linalg.inv(cov) + np.diag(ivar[1]))
    exact = post @ (np.linalg.solve(cov, mu[0]) + ivar[1] * ys[1])
    np.testing.assert_allclose(mean[1], exact, rtol=1e-7, atol=1e-9 * np.abs(exact).max())
    np.testing.assert_allclose(sd[1], np.sqrt(np.diag(post)), rtol=1e-6)


def test_sample_at_either_scale_matches_the_moments(small_universe_model):
    m, clean, cat, wave = small_universe_model
    z = cat["z"].to_numpy()[:3]
    obs = observe_normalised(clean[:3], wave, z, np.full(3, 2.0), "sky", np.random.default_rng(3))
    for scale in ("input", "unit"):
        for calibrated in (False, True):  # the default draws are the exact posterior's
            mean, sd, _ = m.predict(obs["flux"], obs["ivar"], scale=scale, calibrated=calibrated)
            draws = m.sample(obs["flux"], 2000, seed=4, ivar=obs["ivar"], scale=scale, calibrated=calibrated)
            assert draws.shape == (2000, 3, 825)
            assert np.max(np.abs(draws.mean(0) - mean) / (sd / np.sqrt(2000))) < 6.0
            ratio = np.median(draws.std(0) / sd)
            assert 0.85 < ratio < 1.15, (scale, calibrated, ratio)
    # the unit-norm draws are the input-scale ones without their amplitude
    unit_norm = np.linalg.norm(m.sample(obs["flux"], 50, seed=5, ivar=obs["ivar"], scale="unit"), axis=2)
    assert np.all(np.abs(np.median(unit_norm, axis=0) - 1.0) < 0.1)
    with pytest.raises(ConfigError, match="scale"):
        m.sample(obs["flux"], 2, seed=0, ivar=obs["ivar"], scale="bogus")


def test_uncalibrated_draws_are_the_calibrated_ones_before_their_factor(small_universe_model):
    m, clean, cat, wave = small_universe_model
    z = cat["z"].to_numpy()[:3]
    obs = observe_normalised(clean[:3], wave, z, np.array([0.5, 3.0, 30.0]), "sky", np.random.default_rng(6))
    raw = m.sample(obs["flux"], 40, seed=7, ivar=obs["ivar"])
    cal = m.sample(obs["flux"], 40, seed=7, ivar=obs["ivar"], calibrated=True)
    mean = m.predict(obs["flux"], obs["ivar"], calibrated=False, scale="input")[0]
    fac = m.calibration_scale(mean, obs["ivar"])
    assert not np.allclose(fac, 1.0)  # the factor differs from 1 here, so the two kinds of draw differ
    np.testing.assert_allclose(cal, mean[None] + fac[None] * (raw - mean[None]), rtol=1e-9, atol=1e-12)


def _halpha_excess(spectra: np.ndarray, wave: np.ndarray) -> np.ndarray:
    """H-alpha + [NII] excess (..., ) over the median of side bands: a linear line-flux proxy."""
    core = np.abs(wave - 6565.0) < 25.0
    side = (np.abs(wave - 6565.0) > 40.0) & (np.abs(wave - 6565.0) < 120.0)
    return spectra[..., core].sum(-1) - core.sum() * np.median(spectra[..., side], axis=-1)


def test_draws_of_spectra_from_the_prior_give_line_intervals_at_their_nominal_rate(small_universe_model):
    """A known posterior at the line level: spectra drawn from the model's own prior and observed
    with sky noise have the exact posterior the model computes, so the 16-84 % interval of a line
    flux measured on its draws must hold the truth 68 % of the time."""
    m, _, cat, wave = small_universe_model
    n = 400
    clean = m.sample_prior(n, 21)
    clean = clean / np.linalg.norm(clean, axis=1, keepdims=True)
    z = np.resize(cat["z"].to_numpy(), n)
    held = []
    for snr in (0.7, 3.0):
        obs = observe_normalised(clean, wave, z, np.full(n, snr), "sky", np.random.default_rng(int(snr * 10)))
        draws = m.sample(obs["flux"], 40, seed=22, ivar=obs["ivar"])
        lo, hi = np.quantile(_halpha_excess(draws, wave), [0.16, 0.84], axis=0, method="weibull")
        truth = _halpha_excess(obs["truth"], wave)
        held.append(np.mean((truth >= lo) & (truth <= hi)))
    # 400 spectra: binomial sd 0.023 per S/N
    assert all(abs(h - 0.68) < 0.07 for h in held), held


def test_bench_per_class_table_draws_every_class_equally(small_universe_model):
    from tests.conftest import TINY as TINY_PARAMS

    from specdenoise.config import parse_params
    from specdenoise.evaluation.linefit import make_fast_fitter
    from specdenoise.evaluation.posterior_bench import class_grid, class_pool
    from specdenoise.evaluation.posterior_bench_report import _class_table, _separability_table

    params = parse_params(TINY_PARAMS)
    edges, wave = rest_grid(params.preprocess)
    model = small_universe_model[0]
    res = class_grid(model, class_pool(params, 12, 3), wave, make_fast_fitter(None, edges), seed=3, n_samples=5)
    assert set(res["n"].values()) == {12} and len(res["n"]) >= 3  # every class, equally
    assert list(res["bins"]) == [f"sky/snr{s:g}" for s in (0.5, 1, 3, 10, 30, 100)]
    for row in res["bins"].values():
        for c, r in row.items():
            assert c in res["n"] and 0.0 < r["coverage"] <= 1.0 and "Halpha" in r["lines"]
    table = _class_table(res)
    assert len(table) == 6 + 7 + 5 + 6 and all(c in table[5] for c in res["n"])
    for row in res["bins"].values():  # every class row says where its H-alpha truths fall out
        ha = [r["lines"]["Halpha"] for r in row.values()]
        assert all(abs(h["coverage"] + h["below"] + h["above"] - 1) < 1e-9 for h in ha)
    assert list(res["separability"]) == list(res["bins"])  # how well the data tell the classes apart, per S/N
    for sep in res["separability"].values():
        assert set(sep["auc"]) == set(res["n"]) and 0.0 <= sep["accuracy"] <= 1.0
        assert sep["chance"] == pytest.approx(1 / len(res["n"]))
    sep_table = _separability_table(res)
    assert len(sep_table) == 3 + 2 + 6 and all(f"AUC {c}" in sep_table[3] for c in res["n"])


def test_bench_prior_check_holds_pixel_coverage_on_spectra_from_the_prior(small_universe_model):
    """Spectra drawn from the model's own prior have the posterior it computes: the raw sd must
    cover 68 % of pixels at every S/N (what the universe bins miss beyond this is the prior's)."""
    from specdenoise.evaluation.linefit import make_fast_fitter
    from specdenoise.evaluation.posterior_bench import prior_check
    from specdenoise.evaluation.posterior_bench_report import _prior_check_table

    m, _, cat, wave = small_universe_model
    # 240 spectra: with 80 the raw coverage of one S/N bin ranged 0.64-0.74 over prior-check seeds
    z = np.resize(cat["z"].to_numpy(), 240)
    res = prior_check(m, wave, z, make_fast_fitter(None, rest_grid(PreprocessConfig())[0]), 240, seed=5, n_samples=6)
    assert list(res["bins"]) == [f"sky/snr{s:g}" for s in (0.5, 1, 3, 10, 30, 100)]
    raw = [b["coverage_raw"] for b in res["bins"].values()]
    assert all(abs(c - 0.683) < 0.04 for c in raw), raw
    assert all("Halpha" in b["lines"] for b in res["bins"].values())
    assert len(_prior_check_table(res)) == 5 + 6


def test_prior_draws_carry_their_component_and_the_posterior_finds_it(small_universe_model):
    from specdenoise.models.posterior_components import component_probabilities

    m, _, cat, wave = small_universe_model
    spectra, comp = m.sample_prior(300, 31, labels=True)
    np.testing.assert_array_equal(spectra, m.sample_prior(300, 31))  # the same draws, labelled
    assert set(np.unique(comp)) == {0, 1}
    z = np.resize(cat["z"].to_numpy(), 300)
    obs = observe_normalised(spectra, wave, z, np.full(300, 100.0), "sky", np.random.default_rng(2))
    resp = component_probabilities(m, obs["flux"], obs["ivar"])
    np.testing.assert_allclose(resp.sum(1), 1.0, atol=1e-9)
    assert np.mean(resp.argmax(1) == comp) > 0.9  # at S/N 100 the data name the component


def test_exact_by_class_weights_component_coverage_by_class_share(small_universe_model):
    from tests.conftest import TINY as TINY_PARAMS

    from specdenoise.config import parse_params
    from specdenoise.evaluation.linefit import make_fast_fitter
    from specdenoise.evaluation.posterior_bench import SNRS, class_pool
    from specdenoise.evaluation.posterior_bench_exact import exact_by_class, weighted_coverage
    from specdenoise.evaluation.posterior_bench_report import _exact_table

    # two components, the second too rare to count: the class gets the first one's coverage
    assert weighted_coverage(np.array([0.6, 0.9]), np.array([50, 5]), np.array([0.5, 0.5])) == pytest.approx(0.6)
    assert weighted_coverage(np.array([0.6, 0.9]), np.array([50, 50]), np.array([0.75, 0.25])) == pytest.approx(0.675)
    assert np.isnan(weighted_coverage(np.array([np.nan, 0.9]), np.array([50, 5]), np.array([1.0, 0.0])))
    params = parse_params(TINY_PARAMS)
    edges, wave = rest_grid(params.preprocess)
    m = small_universe_model[0]
    pool = class_pool(params, 12, 3)
    res = exact_by_class(m, pool, wave, make_fast_fitter(None, edges), SNRS, seed=3, n=240, n_samples=6)
    assert sum(res["component_draws"]) == 240 and len(res["shares"]) >= 3
    for s in res["shares"].values():
        assert sum(s) == pytest.approx(1.0, abs=1e-3)
    for b in res["bins"].values():
        assert 0.5 < b["all"]["Halpha"] < 0.85  # the exact posterior over its own population (240 draws)
        for cov in b["classes"].values():
            ha = cov["Halpha"]
            lo, hi = np.nanmin(b["per_component"]["Halpha"]), np.nanmax(b["per_component"]["Halpha"])
            assert lo - 1e-3 <= ha <= hi + 1e-3  # a weighted mean of the components' (rounded to 3 places)
    table = _exact_table(res, None)
    assert len(table) == 7 + 6 and all(c in table[5] for c in res["shares"])


def test_an_exact_posterior_misses_a_rare_class_the_data_cannot_name():
    """The premise of :mod:`specdenoise.evaluation.posterior_bench_exact`, on a case solved exactly:
    a line flux with a two-class prior (95 % at 0 +- 0.5, a rare 5 % at 2 +- 0.5) seen through noise of
    sd 2. The exact posterior's 16-84 % intervals hold the truth 68 % of the time over the
    population and over any subset the data choose (here y > 1), but the rare class, which the
    data cannot tell from the common one, is pulled towards it and held far less often."""
    rng = np.random.default_rng(0)
    n, w, mus, sd, noise = 200_000, np.array([0.95, 0.05]), np.array([0.0, 2.0]), 0.5, 2.0
    cls = (rng.random(n) < w[1]).astype(int)
    x = mus[cls] + sd * rng.standard_normal(n)
    y = x + noise * rng.standard_normal(n)
    # exact posterior: a two-component Gaussian mixture per spectrum
    pv = 1 / (1 / sd**2 + 1 / noise**2)
    pm = pv * (mus[None] / sd**2 + y[:, None] / noise**2)  # (n, 2)
    logev = -0.5 * (y[:, None] - mus[None]) ** 2 / (sd**2 + noise**2) + np.log(w)[None]
    r = np.exp(logev - logev.max(1, keepdims=True))
    r /= r.sum(1, keepdims=True)
    from scipy.stats import norm as gauss

    def quantile(q):  # per spectrum, by bisection on the mixture CDF
        lo, hi = np.full(n, -8.0), np.full(n, 10.0)
        for _ in range(50):
            mid = (lo + hi) / 2
            cdf = (r * gauss.cdf((mid[:, None] - pm) / np.sqrt(pv))).sum(1)
            lo, hi = np.where(cdf < q, mid, lo), np.where(cdf < q, hi, mid)
        return (lo + hi) / 2

    inside = (x >= quantile(0.16)) & (x <= quantile(0.84))
    assert inside.mean() == pytest.approx(0.68, abs=0.005)  # the population
    assert inside[y > 1].mean() == pytest.approx(0.68, abs=0.01)  # a subset the data choose
    assert inside[cls == 1].mean() < 0.5  # the rare class: the data cannot name it
    assert inside[cls == 0].mean() > 0.68  # ... and the common one is over-covered
