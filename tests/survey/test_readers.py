"""Survey spectrum readers on the real SDSS spectra ppxf ships and on format fixtures."""

from __future__ import annotations

import numpy as np
import pytest

from specdenoise.errors import DataError
from specdenoise.survey.readers import Spectrum, detect_format, open_fits, read_spectra, vac_to_air
from survey.survey_fixtures import ppxf_sdss_file, write_spec_lite, write_spspec

HALPHA_VAC, HALPHA_AIR = 6564.61, 6562.80


@pytest.mark.parametrize(
    ("name", "z", "sid"),
    [
        ("NGC3073_SDSS_DR18.fits", 0.0037627, "sdss-0945-52652-0470"),
        ("NGC3522_SDSS_DR18.fits", 0.0040180, "sdss-2488-54149-0001"),
    ],
)
def test_real_sdss_spec_files(name, z, sid):
    from astropy.io import fits

    path = ppxf_sdss_file(name)
    (s,) = read_spectra(path)
    assert isinstance(s, Spectrum) and s.id == sid
    assert s.z == pytest.approx(z, abs=2e-7)
    assert s.meta["survey"] == "sdss" and s.meta["format"] == "spec" and s.meta["wave_medium"] == "vacuum"
    assert s.meta["source"] == str(path)
    # SDSS optical coverage, in air
    assert 3790 < s.wave[0] < 3830 and 9195 < s.wave[-1] < 9210
    assert np.all(np.diff(s.wave) > 0) and s.wave.shape == s.flux.shape == s.ivar.shape
    with fits.open(path) as h:
        vac = 10.0 ** h["COADD"].data["loglam"].astype(float)
        flux = h["COADD"].data["flux"]
    # vacuum -> air moves H-alpha by ~1.8 A (6564.61 -> 6562.80)
    i = int(np.argmin(np.abs(vac - HALPHA_VAC * (1 + z))))
    assert vac[i] - s.wave[i] == pytest.approx((HALPHA_VAC - HALPHA_AIR) * (1 + z), abs=0.02)
    np.testing.assert_array_equal(s.flux, flux.astype(float))
    # the spectrum's strongest feature near H-alpha sits at the air wavelength 6562.8 (1 + z)
    win = np.abs(s.wave - HALPHA_AIR * (1 + z)) < 20
    cont = np.median(s.flux[win])
    peak = s.wave[win][np.argmax(s.flux[win] - cont)]
    assert abs(peak - HALPHA_AIR * (1 + z)) < 1.5
    # pipeline line list kept
    assert s.meta["lines"]["H_alpha"]["flux"] > 0


def test_and_mask_bad_bits_set_ivar_zero():
    from astropy.io import fits

    path = ppxf_sdss_file("NGC3073_SDSS_DR18.fits")
    with fits.open(path) as h:
        and_mask = h["COADD"].data["and_mask"].astype(np.int64)
        ivar_file = h["COADD"].data["ivar"].astype(float)
    (s,) = read_spectra(path)
    brightsky = (and_mask & (1 << 23)) != 0
    assert brightsky.sum() >= 1 and (ivar_file[brightsky] > 0).all()  # the file keeps them...
    assert (s.ivar[brightsky] == 0).all()  # ... the reader masks them
    untouched = and_mask == 0
    np.testing.assert_array_equal(s.ivar[untouched], ivar_file[untouched])
    assert s.meta["n_masked"] == int((s.ivar == 0).sum())
    # NEARBADPIXEL (bit 16) alone is informational: NGC3522 has such pixels and they stay good
    p2 = ppxf_sdss_file("NGC3522_SDSS_DR18.fits")
    with fits.open(p2) as h:
        m2 = h["COADD"].data["and_mask"].astype(np.int64)
    (s2,) = read_spectra(p2)
    near = m2 == (1 << 16)
    assert near.any() and (s2.ivar[near] > 0).all()


def test_spec_lite_fixture(tmp_path):
    path = write_spec_lite(tmp_path / "spec-0266-51602-0001.fits", 266, 51602, 1, 0.0312)
    (s,) = read_spectra(path)
    assert s.id == "sdss-0266-51602-0001" and s.z == pytest.approx(0.0312) and s.meta["format"] == "spec-lite"
    assert s.meta["class"] == "GALAXY"


def test_dr7_spspec_fixture(tmp_path):
    truth = write_spspec(tmp_path / "spSpec-51630-0266-145.fit")
    (s,) = read_spectra(tmp_path / "spSpec-51630-0266-145.fit")
    assert s.id == truth["id"] and s.z == pytest.approx(truth["z"]) and s.meta["format"] == "spSpec"
    np.testing.assert_allclose(s.wave, vac_to_air(truth["wave_vac"]))
    np.testing.assert_allclose(s.flux, truth["flux"], rtol=1e-6)
    assert (s.ivar[100:110] == 0).all()  # error 0
    assert (s.ivar[500:505] == 0).all()  # BRIGHTSKY
    assert s.ivar[600:605] == pytest.approx(0.25)  # emission-line flag keeps the pixel
    assert s.ivar[0] == pytest.approx(1 / 2.0**2)
    peak = s.wave[np.argmax(s.flux)]
    # the synthetic H-alpha line (vacuum 6564.6 (1 + z)) lands on its air wavelength (pixel 1.5 A)
    assert abs(peak - HALPHA_AIR * (1 + truth["z"])) < 1.0


def test_dr7_spspec_three_rows_without_mask(tmp_path):
    write_spspec(tmp_path / "a.fit", rows=3)
    (s,) = read_spectra(tmp_path / "a.fit")
    assert (s.ivar[500:505] > 0).all() and (s.ivar[100:110] == 0).all()


def test_missing_file():
    with pytest.raises(DataError, match="nope.fits: file not found"):
        read_spectra("nope.fits")


def test_not_fits(tmp_path):
    p = tmp_path / "junk.fits"
    p.write_bytes(b"this is not a FITS file" * 200)
    with pytest.raises(DataError, match=r"junk\.fits: not a readable FITS file"):
        read_spectra(p)


@pytest.mark.parametrize("frac", [0.5, 0.05, 0.002])
def test_truncated_real_file(tmp_path, frac):
    data = ppxf_sdss_file().read_bytes()
    p = tmp_path / "trunc.fits"
    p.write_bytes(data[: int(len(data) * frac)])
    with pytest.raises(DataError, match=r"trunc\.fits: not a readable FITS file"):
        read_spectra(p)


def test_truncated_gzip(tmp_path):
    import gzip

    data = gzip.compress(ppxf_sdss_file().read_bytes())
    p = tmp_path / "t.fits.gz"
    p.write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError, match=r"t\.fits\.gz: not a readable FITS file"):
        read_spectra(p)


def test_gzipped_file_reads(tmp_path):
    import gzip

    p = tmp_path / "s.fits.gz"
    p.write_bytes(gzip.compress(ppxf_sdss_file().read_bytes()))
    assert read_spectra(p)[0].id == "sdss-2488-54149-0001"


def test_unrecognised_format(tmp_path):
    from astropy.io import fits

    p = tmp_path / "img.fits"
    fits.PrimaryHDU(np.zeros((4, 4), dtype=np.float32)).writeto(p)
    with pytest.raises(DataError, match=r"img\.fits: unrecognised spectrum format"):
        read_spectra(p)


def test_missing_specobj_and_column(tmp_path):
    from astropy.io import fits

    src = write_spec_lite(tmp_path / "full.fits", 1, 51000, 1, 0.03)
    with fits.open(src) as h:
        no_so = fits.HDUList([h[0].copy(), h["COADD"].copy()])
        no_so.writeto(tmp_path / "noso.fits")
        cols = [c for c in h["COADD"].columns if c.name != "ivar"]
        fits.HDUList([h[0].copy(), fits.BinTableHDU.from_columns(cols, name="COADD"), h["SPECOBJ"].copy()]).writeto(
            tmp_path / "noivar.fits"
        )
    with pytest.raises(DataError, match=r"noso\.fits: no SPECOBJ"):
        read_spectra(tmp_path / "noso.fits")
    with pytest.raises(DataError, match=r"noivar\.fits: HDU COADD lacks column\(s\) ivar"):
        read_spectra(tmp_path / "noivar.fits")


def test_spspec_missing_header_keyword(tmp_path):
    from astropy.io import fits

    write_spspec(tmp_path / "s.fit")
    with fits.open(tmp_path / "s.fit") as h:
        del h[0].header["Z"]
        h.writeto(tmp_path / "noz.fit")
    with pytest.raises(DataError, match=r"noz\.fit: spSpec header lacks keyword\(s\) Z"):
        read_spectra(tmp_path / "noz.fit")


def test_desi_coadd_dispatch(tmp_path, monkeypatch):
    from astropy.io import fits

    p = tmp_path / "coadd-test.fits"
    hdus = [fits.PrimaryHDU()] + [
        fits.ImageHDU(np.ones((1, 10), dtype=np.float32), name=f"{arm}_FLUX") for arm in "BRZ"
    ]
    fits.HDUList(hdus).writeto(p)
    with open_fits(p) as h:
        assert detect_format(h) == "desi-coadd"
    calls = []

    def fake(path):
        calls.append(path)
        return ["desi"]

    # the dispatcher may call the reader through its own namespace or the desi module's
    import specdenoise.survey.readers as readers
    import specdenoise.survey.readers.desi as desi

    monkeypatch.setattr(readers, "read_desi_coadd", fake, raising=False)
    monkeypatch.setattr(desi, "read_desi_coadd", fake)
    assert read_spectra(p) == ["desi"] and calls == [p]
