import numpy as np
import pytest
import spectres

from specdenoise.config import PreprocessConfig
from specdenoise.data.preprocess import (
    check_spectra,
    edges_from_centres_log,
    normalise,
    preprocess,
    resample,
    rest_grid,
)
from specdenoise.errors import DataError


def _spectrum(seed=0, n=600):
    rng = np.random.default_rng(seed)
    loglam = 3.58 + 1e-4 * np.arange(n)
    flux = 1.0 + rng.random(n)
    ivar = 1.0 / (0.05 + rng.random(n)) ** 2
    return loglam, flux, ivar


def test_resample_matches_spectres_flux_and_errors():
    loglam, flux, ivar = _spectrum()
    wave = 10**loglam
    new_edges = np.geomspace(3850.0, 4300.0, 121)
    centres = 0.5 * (new_edges[1:] + new_edges[:-1])
    f, iv, cov = resample(new_edges, edges_from_centres_log(loglam), flux[None], ivar[None])
    # spectres derives bin edges from centres (midpoints): give it the same edges
    fs, es = spectres.spectres(centres, wave, flux, spec_errs=1 / np.sqrt(ivar), verbose=False)
    inner = slice(1, -1)  # spectres guesses the two outermost edges differently
    np.testing.assert_allclose(f[0, inner], fs[inner], rtol=2e-3)
    np.testing.assert_allclose(1 / np.sqrt(iv[0, inner]), es[inner], rtol=2e-2)
    assert np.all(cov == pytest.approx(1.0))


def test_resample_conserves_flux():
    loglam, flux, ivar = _spectrum(1)
    old = edges_from_centres_log(loglam)
    new = np.geomspace(old[10], old[-10], 97)
    f, _, _ = resample(new, old, flux[None], ivar[None])
    total_new = np.sum(f[0] * np.diff(new))
    # exact integral of the piecewise-constant input over [new[0], new[-1]]
    fine = np.concatenate([[new[0]], old[(old > new[0]) & (old < new[-1])], [new[-1]]])
    mids = 0.5 * (fine[1:] + fine[:-1])
    idx = np.searchsorted(old, mids) - 1
    total_old = np.sum(flux[idx] * np.diff(fine))
    assert total_new == pytest.approx(total_old, rel=1e-12)


def test_masked_pixels_are_excluded_and_reported():
    loglam, flux, ivar = _spectrum(2)
    flux = flux.copy()
    ivar = ivar.copy()
    flux[100:140] = 1e6  # garbage under the mask must not leak
    ivar[100:140] = 0.0
    old = edges_from_centres_log(loglam)
    new = old[::5]
    f, iv, cov = resample(new, old, flux[None], ivar[None])
    assert f.max() < 10
    assert np.all(iv[0, cov[0] == 0] == 0)
    assert np.sum(cov[0] < 1) == 8  # 40 masked pixels = 8 output bins of 5


def test_rest_frame_shift_puts_a_line_at_its_rest_wavelength():
    cfg = PreprocessConfig()
    loglam = 3.5798 + 1e-4 * np.arange(3840)
    wave = 10**loglam
    z = np.array([0.03, 0.045])
    flux = np.ones((2, len(loglam)))
    for i, zi in enumerate(z):
        flux[i] += 50 * np.exp(-0.5 * ((wave - 6562.8 * (1 + zi)) / 2.5) ** 2)
    pre = preprocess({"loglam": loglam, "flux": flux, "ivar": np.ones_like(flux), "z": z, "id": np.arange(2)}, cfg)
    peak = pre["wave"][np.argmax(pre["flux"], axis=1)]
    assert np.all(np.abs(peak - 6562.8) < 6)  # within one 825-bin pixel (~6.4 A at H-alpha)
    np.testing.assert_allclose(np.linalg.norm(pre["flux"], axis=1), 1.0, rtol=1e-6)


def test_normalisations():
    x = np.array([[1.0, 2.0, 2.0], [3.0, 0.0, 4.0]])
    np.testing.assert_allclose(normalise(x, "l2"), [3.0, 5.0])
    np.testing.assert_allclose(normalise(x, "sum"), [5.0, 7.0])
    np.testing.assert_allclose(normalise(x, "median"), [2.0, 3.0])
    edges, centres = rest_grid(PreprocessConfig())
    assert len(centres) == 825 and edges[0] == pytest.approx(3700) and edges[-1] == pytest.approx(7900)
    assert np.allclose(np.diff(np.log(edges)), np.log(7900 / 3700) / 825)


@pytest.mark.parametrize(
    "mutate, fragment",
    [
        (lambda d: d["flux"].__setitem__((1, 5), np.nan), "galaxy id 11: 1 non-finite"),
        (lambda d: d["flux"].__setitem__((0, 5), np.inf), "galaxy id 10: 1 non-finite"),
        (lambda d: d.__setitem__("loglam", d["loglam"][::-1].copy()), "not strictly increasing"),
        (lambda d: d["z"].__setitem__(1, -0.2), "galaxy id 11: redshift z=-0.2"),
        (lambda d: d["flux"].__setitem__(0, 0.0), "galaxy id 10: all-zero"),
        (lambda d: d["ivar"].__setitem__((1, 3), -1.0), "negative or non-finite inverse variance"),
    ],
)
def test_bad_input_is_named(mutate, fragment):
    loglam, flux, ivar = _spectrum(3)
    d = {
        "loglam": loglam,
        "flux": np.stack([flux, flux]),
        "ivar": np.stack([ivar, ivar]),
        "z": np.array([0.03, 0.04]),
        "id": np.array([10, 11]),
    }
    mutate(d)
    with pytest.raises(DataError, match=fragment.replace("(", r"\(")) as err:
        check_spectra(d["loglam"], d["flux"], d["ivar"], d["z"], d["id"], "input.npz")
    assert str(err.value).startswith("input.npz")


def test_nan_in_masked_pixel_is_allowed_and_ignored():
    """A NaN under the mask (ivar = 0) passes the check and has no effect: the masked value does not matter."""
    loglam, flux, ivar = _spectrum(4)
    flux[7], ivar[7] = np.nan, 0.0
    z, ids = np.array([0.03]), np.array([1])
    assert check_spectra(loglam, flux[None], ivar[None], z, ids, "x") is None
    # known answer: the same spectrum with any finite value in the masked pixel
    finite = flux.copy()
    finite[7] = 123.0
    old = edges_from_centres_log(loglam)
    new = old[::5]
    f_nan, iv_nan, cov_nan = resample(new, old, flux[None], ivar[None])
    f_ref, iv_ref, cov_ref = resample(new, old, finite[None], ivar[None])
    assert np.isfinite(f_nan).all() and np.isfinite(iv_nan).all()
    np.testing.assert_array_equal(f_nan, f_ref)
    np.testing.assert_array_equal(iv_nan, iv_ref)
    assert cov_nan[0, 1] == pytest.approx(0.8)  # pixel 7 is one of the five in the second bin
    cfg = PreprocessConfig(wave_min=3750.0, wave_max=4150.0, n_pix=60)
    obs = {"loglam": loglam, "flux": flux[None], "ivar": ivar[None], "z": z, "id": ids}
    ref = preprocess(dict(obs, flux=finite[None]), cfg)
    out = preprocess(obs, cfg)
    np.testing.assert_array_equal(out["flux"], ref["flux"])
    np.testing.assert_array_equal(out["norm"], ref["norm"])
    # the same NaN in a pixel that is not masked is rejected
    with pytest.raises(DataError, match="galaxy id 1: 1 non-finite flux value"):
        check_spectra(loglam, flux[None], np.where(np.isnan(flux), 1.0, ivar)[None], z, ids, "x")


def test_fill_masked_vectorised_equals_np_interp_row_by_row():
    """The vectorised fill is the per-row np.interp it replaced (nearest value beyond the ends)."""
    from specdenoise.data.preprocess import fill_masked

    rng = np.random.default_rng(0)
    wave = np.geomspace(3700, 7900, 825)
    flux = rng.normal(size=(40, 825))
    mask = rng.random((40, 825)) < 0.3
    mask[0], mask[1, :100], mask[2, -50:], mask[3] = True, True, True, False
    mask[4, :] = True
    mask[4, 400] = False  # one good bin: the whole row takes its value
    ref = flux.copy()
    for r in range(len(flux)):
        m = mask[r]
        if m.any() and not m.all():
            ref[r, m] = np.interp(wave[m], wave[~m], flux[r, ~m])
    out = fill_masked(flux, mask, wave)
    np.testing.assert_allclose(out, ref, rtol=1e-12, atol=1e-12)
    assert np.array_equal(out[0], flux[0])  # all masked: unchanged
