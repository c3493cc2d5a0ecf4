"""The DESI coadd reader (arm merge; the two real coadds shipped in the fastspecfit wheel) and their noise shape."""

from __future__ import annotations

import numpy as np
import pytest

from specdenoise.config import DesiConfig
from specdenoise.survey.readers.desi import merge_arms


@pytest.fixture(scope="module")
def coadds(tmp_path_factory):
    from specdenoise.data.desi import fetch_coadds

    cfg = DesiConfig()
    dest = tmp_path_factory.mktemp("desi")
    prov = fetch_coadds(cfg, dest)
    return cfg, dest, prov


def test_read_real_desi_coadds(coadds):
    from specdenoise.survey.readers import read_spectra

    cfg, dest, prov = coadds
    assert set(prov["files"]) >= set(cfg.coadds) and len(prov["wheel_sha256"]) == 64
    spec = read_spectra(dest / cfg.coadds[0])
    assert len(spec) == 1
    s = spec[0]
    assert s.id == "desi-39633345008634465" and s.z == pytest.approx(0.36874, abs=1e-4)  # from the Redrock file
    assert s.meta["wave_medium"] == "vacuum" and s.meta["survey"] == "desi"
    assert 3597 < s.wave[0] < 3600 and 9818 < s.wave[-1] < 9824  # air, converted from 3600-9824 A vacuum
    assert np.all(np.diff(s.wave) > 0) and len(s.wave) == 7781
    # the B/R overlap (5760-5800 A vacuum) has the summed inverse variance of both arms
    from astropy.io import fits

    with fits.open(dest / cfg.coadds[0]) as h:
        wb, ib = h["B_WAVELENGTH"].data, h["B_IVAR"].data[0]
        wr, ir = h["R_WAVELENGTH"].data, h["R_IVAR"].data[0]
    j = int(np.searchsorted(wb, 5780.0))
    jr = int(np.argmin(np.abs(wr - wb[j])))
    from specdenoise.survey.readers.spectrum import vac_to_air

    k = int(np.argmin(np.abs(s.wave - vac_to_air(np.array([wb[j]]))[0])))
    assert s.ivar[k] == pytest.approx(ib[j] + ir[jr], rel=1e-5)


def test_noise_shape_from_real_coadds(coadds):
    from specdenoise.data.desi import noise_shape

    cfg, dest, _ = coadds
    sh = noise_shape([dest / c for c in cfg.coadds])
    assert np.median(sh["shape"]) == pytest.approx(1.0)
    assert np.all(np.isfinite(sh["shape"])) and np.all(sh["shape"] > 0)
    # both coadds: the blue end of the B arm is noisier than the R arm (sky-limited, lower throughput)
    blue, red = (sh["wave"] < 4000), (sh["wave"] > 6000) & (sh["wave"] < 7000)
    assert np.median(sh["shape"][blue]) > np.median(sh["shape"][red])
    assert sh["sigma_median"][1] < sh["sigma_median"][0]  # the 'special dark' coadd is deeper


def test_merge_arms_inverse_variance():
    w1, w2 = np.arange(10) * 0.8 + 100.0, np.arange(8, 15) * 0.8 + 100.0  # overlap at pixels 8, 9
    f1, f2 = np.full((1, 10), 2.0), np.full((1, 7), 4.0)
    i1, i2 = np.full((1, 10), 1.0), np.full((1, 7), 3.0)
    w, f, iv = merge_arms([w1, w2], [f1, f2], [i1, i2])
    assert len(w) == 15
    assert f[0, 8] == pytest.approx((2 * 1 + 4 * 3) / 4) and iv[0, 8] == pytest.approx(4.0)
    assert f[0, 0] == 2.0 and f[0, -1] == 4.0


def test_merge_arms_slices_equal_the_scattered_sum():
    """Arms that are runs of the union grid (the DESI case, merged with slices) give bit for bit the
    inverse-variance sum of the straightforward scattered add; bad values drop out."""
    rng = np.random.default_rng(4)
    waves = [np.arange(0, 40) * 0.8 + 3600.0, np.arange(30, 70) * 0.8 + 3600.0, np.arange(65, 90) * 0.8 + 3600.0]
    fluxes = [rng.standard_normal((5, len(w))).astype(np.float32) for w in waves]
    ivars = [rng.random((5, len(w))).astype(np.float32) for w in waves]
    fluxes[0][0, 3], ivars[1][1, 2], ivars[2][2, 0], fluxes[1][3, 35 - 30] = np.nan, np.inf, -1.0, np.inf
    wave, flux, ivar = merge_arms(waves, fluxes, ivars)
    num, den = np.zeros((5, len(wave))), np.zeros((5, len(wave)))
    for w, f, iv in zip(waves, fluxes, ivars, strict=True):
        f, iv = f.astype(float), iv.astype(float)
        iv = np.where(np.isfinite(iv) & np.isfinite(f) & (iv > 0), iv, 0.0)
        idx = np.searchsorted(wave, np.round(w, 3))
        np.add.at(num, (slice(None), idx), np.where(iv > 0, f, 0.0) * iv)
        np.add.at(den, (slice(None), idx), iv)
    assert len(wave) == 90 and np.array_equal(ivar, den)
    assert np.array_equal(flux, np.divide(num, den, out=np.zeros_like(num), where=den > 0))
    assert flux[0, 3] == 0.0 and ivar[0, 3] == 0.0  # NaN flux: masked
