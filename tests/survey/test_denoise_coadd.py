"""Survey-native de-noising of DESI coadds built from the two real fastspecfit coadds: one output
file per input with one flagged row per bad target, redshift sources, the vectorised
preprocessing against the per-spectrum path, resume and --per-spectrum. A tiny PCA is the model."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits

from conftest import TINY_VAE_OVERRIDES
from faults.harness import assert_fails, cli
from specdenoise.config import DesiConfig, parse_params
from specdenoise.errors import DataError
from specdenoise.survey.batch import run_batch
from specdenoise.survey.quality import SKIP_BITS, Quality, header_cards
from specdenoise.survey.readers import read_block
from survey.survey_fixtures import write_desi_coadd

N = 500
NO_OOD = {"ood_chi2": 1e12}  # the tiny model is far from real DESI spectra; OOD is tested on its own


@pytest.fixture(scope="module")
def real_coadds(tmp_path_factory) -> list[Path]:
    from specdenoise.data.desi import fetch_coadds

    cfg = DesiConfig()
    dest = tmp_path_factory.mktemp("desi")
    fetch_coadds(cfg, dest)
    return [dest / c for c in cfg.coadds]


@pytest.fixture(scope="module")
def model(tmp_path_factory, tiny_processed, tiny_noisy) -> Path:
    from specdenoise.training.train import train_one

    root = tmp_path_factory.mktemp("pca")
    params = parse_params(TINY_VAE_OVERRIDES)
    train_one("pca", 3, params, tiny_processed, tiny_noisy, root / "models" / "pca_3", tracking=False)
    return root / "models" / "pca_3" / "model"


@pytest.fixture(scope="module")
def coadd500(tmp_path_factory, real_coadds) -> dict:
    """500 targets; target 0 at z = 1.2, target 1 a star, target 2 with every pixel masked."""
    path = tmp_path_factory.mktemp("in") / "coadd-test-500.fits"
    base = write_desi_coadd(path, real_coadds, n=N, redrock=False)
    z = base["z"].copy()
    z[0] = 1.2
    types = ["GALAXY"] * N
    types[1] = "STAR"
    info = write_desi_coadd(path, real_coadds, n=N, z=z, spectype=types, masked=(2,))
    return {"path": path, **info}


def _run(inputs, out, model, **kw):
    return run_batch(list(inputs), out, str(model), parse_params({}), workers=0, **{**NO_OOD, **kw})


def test_500_target_coadd_one_file_three_flagged_rows(coadd500, model, tmp_path):
    out = tmp_path / "out"
    s = _run([coadd500["path"]], out, model)
    assert (s["n_ok"], s["n_bad"], s["n_spectra"], s["n_denoised"]) == (1, 0, N, N - 3)
    assert s["flags"] == {"BAD_INPUT": 1, "Z_RANGE": 1, "NOT_GALAXY": 1}
    assert sorted(p.name for p in out.glob("*.fits")) == ["coadd-test-500.denoised.fits"]
    with fits.open(out / "coadd-test-500.denoised.fits") as h:
        names = [x.name for x in h]
        assert names == ["PRIMARY", "WAVELENGTH", "FLUX", "SIGMA", "INPUT", "IVAR", "MASK", "METADATA"]
        meta, flux, ivar, mask = h["METADATA"].data, h["FLUX"].data, h["IVAR"].data, h["MASK"].data
        assert flux.shape == (N, 825) and mask.dtype == np.uint8
        assert h[0].header["NSPEC"] == N and h[0].header["QUALBIT2"] == int(Quality.NOT_GALAXY)
        assert h["IVAR"].header["BUNIT"].startswith("10**+34")
        assert np.array_equal(meta["TARGETID"], coadd500["targetid"])
        assert np.allclose(meta["Z"], coadd500["z"]) and set(meta["Z_SOURCE"]) == {"redrock"}
        q = np.asarray(meta["QUALITY"])
        assert q[0] == Quality.Z_RANGE and q[1] == Quality.NOT_GALAXY and q[2] == Quality.BAD_INPUT
        assert np.all(q[3:] == 0)
        assert np.all(np.isnan(flux[:3])) and np.all(mask[:3] == 1) and np.all(ivar[:3] == 0)
        good = mask[3:] == 0
        assert np.all(np.isfinite(flux[3:][good])) and good.mean() > 0.8
        assert np.all(np.isfinite(meta["CHI2_RED"][3:])) and np.all(meta["NORM"][3:] > 0)
        assert np.allclose(meta["MASKED_FRAC"], mask.mean(axis=1))
        assert np.all(np.isfinite(meta["RA"])) and np.all(np.isfinite(meta["DEC"]))


def test_vectorised_preprocessing_equals_the_per_spectrum_path(coadd500, model):
    """The block path (all targets of a file as one 2-D array) gives today's per-spectrum numbers."""
    from specdenoise.survey.denoiser import Denoiser
    from specdenoise.survey.targets import prepare_block

    den = Denoiser.load(model, parse_params({}))
    block = read_block(coadd500["path"])
    opts = {"z_max": 1.0, "max_masked": 0.5}
    _, pre = prepare_block(den, block, opts)
    block = read_block(coadd500["path"])
    for j, i in enumerate(pre["rows"][::25]):
        k = int(np.flatnonzero(pre["rows"] == i)[0])
        one = den.prepare(block.wave, block.flux[i], block.ivar[i], block.z[i], [block.ids[i]])
        for key in ("flux", "ivar", "coverage"):
            np.testing.assert_allclose(pre[key][k], one[key][0], rtol=1e-6, atol=1e-7 * np.abs(one[key][0]).max())
        assert pre["norm"][k] == pytest.approx(one["norm"][0], rel=1e-6)
        assert np.array_equal(pre["mask"][k], one["mask"][0])
        assert j < 20


def test_chunked_preprocessing_equals_one_block(coadd500, model, monkeypatch):
    """prepare_block preprocesses in chunks of PRE_ROWS targets (memory, cache): the same values,
    bit for bit, as all targets in one call."""
    from specdenoise.survey import targets
    from specdenoise.survey.denoiser import Denoiser

    den = Denoiser.load(model, parse_params({}))
    block = read_block(coadd500["path"])
    opts = {"z_max": 1.0, "max_masked": 0.5}
    assert targets.PRE_ROWS < N
    q, pre = targets.prepare_block(den, block, opts)
    monkeypatch.setattr(targets, "PRE_ROWS", 10 * N)
    q1, one = targets.prepare_block(den, block, opts)
    assert np.array_equal(q, q1) and pre.keys() == one.keys()
    for key in pre:
        assert np.array_equal(pre[key], one[key]), key


def test_warm_loads_and_runs_the_model_once(model, tmp_path, monkeypatch):
    """The bench's warm-up: the de-noiser is loaded into this process's cache and run once on a
    flat spectrum (what a model builds lazily is built before timing)."""
    from specdenoise.survey import worker
    from specdenoise.survey.denoiser import Denoiser

    calls = []
    real = Denoiser.predict
    monkeypatch.setattr(Denoiser, "predict", lambda self, *a: calls.append(a[0].shape) or real(self, *a))
    assert worker.warm(str(model), {}, None, str(tmp_path)) == 825
    assert calls == [(1, 825)]
    assert worker.get_denoiser(str(model), {}, None, str(tmp_path)).preprocess_cfg.n_pix == 825


def test_redshifts_from_a_catalogue_or_none(real_coadds, model, tmp_path):
    path = tmp_path / "in" / "coadd-small.fits"
    info = write_desi_coadd(path, real_coadds, n=6, redrock=False)
    # no Redrock file: every target lacks z -> every row flagged Z_RANGE, the file is still written
    s = _run([path], tmp_path / "a", model)
    assert (s["n_ok"], s["n_denoised"], s["flags"]) == (1, 0, {"Z_RANGE": 6})
    # a CSV catalogue (TARGETID, Z); one target at z = 0.9 is mostly off the rest-frame grid
    z = info["z"].copy()
    z[3] = 0.9
    cat = tmp_path / "z.csv"
    cat.write_text("TARGETID,Z\n" + "".join(f"{t},{v}\n" for t, v in zip(info["targetid"], z, strict=True)))
    s = _run([path], tmp_path / "b", model, redshifts=str(cat))
    assert (s["n_denoised"], s["flags"]) == (5, {"UNCOVERED": 1})
    with fits.open(tmp_path / "b" / "coadd-small.denoised.fits") as h:
        meta = h["METADATA"].data
        assert np.allclose(meta["Z"], z) and set(meta["Z_SOURCE"]) == {"catalog"}
        assert meta["QUALITY"][3] == Quality.UNCOVERED and meta["MASKED_FRAC"][3] > 0.5
    # a FITS catalogue with its own column names and spectral types
    from astropy.table import Table

    t = Table({"ID": [f"desi-{x}" for x in info["targetid"]], "REDSHIFT": z, "CLASS": ["GALAXY"] * 5 + ["QSO"]})
    t.write(tmp_path / "z.fits")
    s = _run(
        [path],
        tmp_path / "c",
        model,
        redshifts=str(tmp_path / "z.fits"),
        id_column="ID",
        **{"z_column": "REDSHIFT", "type_column": "CLASS"},
    )
    assert s["flags"] == {"UNCOVERED": 1, "NOT_GALAXY": 1}
    with pytest.raises(DataError, match="no redshift column 'ZZ'"):
        _run([path], tmp_path / "d", model, redshifts=str(cat), z_column="ZZ")


def test_bad_redshift_catalogue_is_a_one_line_error(real_coadds, model, tmp_path):
    path = tmp_path / "coadd-x.fits"
    write_desi_coadd(path, real_coadds, n=2, redrock=False)
    cat = tmp_path / "z.csv"
    cat.write_text("TARGETID,REDSHIFT\n1,0.1\n")
    res = cli("denoise", path, "--model", model, "--out", tmp_path / "o", "--workers", "0", "--redshifts", cat)
    assert_fails(res, 3, "z.csv")
    assert not (tmp_path / "o").exists()


def test_out_of_domain_flag_and_resume_and_per_spectrum(real_coadds, model, tmp_path):
    path = tmp_path / "in" / "coadd-ood.fits"
    write_desi_coadd(path, real_coadds, n=4)
    out = tmp_path / "out"
    s = run_batch([path], out, str(model), parse_params({}), workers=0, ood_chi2=1e-6, per_spectrum=True)
    assert s["flags"] == {"OUT_OF_DOMAIN": 4} and s["n_denoised"] == 4  # flagged but de-noised
    names = sorted(p.name for p in out.glob("*.fits"))
    assert len(names) == 5 and "coadd-ood.denoised.fits" in names
    with fits.open(out / next(n for n in names if ".desi-" in n)) as h:
        assert h["FLUX"].data.shape == (1, 825) and len(h["METADATA"].data) == 1
        assert np.all(np.isfinite(h["METADATA"].data["CHI2_PRED"]))
    mtimes = {p.name: p.stat().st_mtime_ns for p in out.glob("*.fits")}
    again = run_batch([path], out, str(model), parse_params({}), workers=0, ood_chi2=1e-6, per_spectrum=True)
    assert (again["n_ok"], again["n_skipped"]) == (0, 1)
    assert {p.name: p.stat().st_mtime_ns for p in out.glob("*.fits")} == mtimes
    assert json.loads((out / "coadd-ood.done.json").read_text())["n_spectra"] == 4


def test_quality_bits_are_documented_once():
    cards = header_cards()
    assert [c[1] for c in cards] == [1, 2, 4, 8, 16]
    assert all(len(c[2]) <= 47 for c in cards)  # fit an 80-column card beside the value
    assert SKIP_BITS & Quality.OUT_OF_DOMAIN == 0
