"""Fault cases of the survey readers (``data read`` and ``denoise``): damaged SDSS fields give one
line naming the file and the field; ``data read`` lists every bad file; nothing escapes --out."""

from __future__ import annotations

import json

import numpy as np
from astropy.io import fits
from tests.faults import survey_cases
from tests.faults.harness import assert_fails, cli, fingerprint
from tests.faults.survey_cases import Z, bad_spec, good_spec

from specdenoise.errors import EXIT_DATA, EXIT_PARTIAL
from survey.survey_fixtures import write_spspec

pca_model = survey_cases.pca_model  # the module's fixture


def _spspec_with(path, **cards):
    write_spspec(path)
    with fits.open(path, mode="update") as h:
        for k, v in cards.items():
            h[0].header[k] = v
    return path


def test_plate_path_traversal_is_named(tmp_path):
    f = bad_spec(tmp_path / "trav.fits", specobj={"PLATE": ("10A", ["../../etc"])})
    assert_fails(cli("data", "read", f), EXIT_DATA, str(f), "SPECOBJ.PLATE", "../../etc")


def test_string_redshift_is_named(tmp_path):
    f = bad_spec(tmp_path / "strz.fits", specobj={"Z": ("8A", ["0.1abc"])})
    assert_fails(cli("data", "read", f), EXIT_DATA, str(f), "SPECOBJ.Z")


def test_nan_redshift_is_named(tmp_path):
    f = bad_spec(tmp_path / "nanz.fits", specobj={"Z": ("E", [np.nan])})
    assert_fails(cli("data", "read", f), EXIT_DATA, str(f), "SPECOBJ.Z", "finite")


def test_empty_coadd_table_is_named(tmp_path):
    f = bad_spec(tmp_path / "empty.fits", empty_coadd=True)
    assert_fails(cli("data", "read", f), EXIT_DATA, str(f), "COADD")


def test_spspec_string_plateid_is_named(tmp_path):
    f = _spspec_with(tmp_path / "spSpec-51630-0266-145.fit", PLATEID="../../etc")
    assert_fails(cli("data", "read", f), EXIT_DATA, str(f), "PLATEID")


def test_spspec_string_z_is_named(tmp_path):
    f = _spspec_with(tmp_path / "spSpec-51630-0266-146.fit", Z="high")
    assert_fails(cli("data", "read", f), EXIT_DATA, str(f), "Z", "high")


def test_data_read_lists_every_bad_file_then_goes_on(tmp_path):
    bad1 = bad_spec(tmp_path / "a.fits", specobj={"Z": ("8A", ["x"])})
    good = good_spec(tmp_path / "b.fits")
    bad2 = bad_spec(tmp_path / "c.fits", empty_coadd=True)
    before = fingerprint(tmp_path)
    res = cli("data", "read", bad1, good, bad2)
    assert res.code == EXIT_PARTIAL and "Traceback" not in res.stderr
    bad_lines = [ln for ln in res.stderr.splitlines() if ln.startswith("bad:")]
    assert len(bad_lines) == 2 and str(bad1) in bad_lines[0] and str(bad2) in bad_lines[1]
    assert "SPECOBJ.Z" in bad_lines[0] and "COADD" in bad_lines[1]
    assert "2 of 3 file(s) read, 1 bad" not in res.stderr and "1 of 3 file(s) read, 2 bad" in res.stderr
    assert "sdss-0266-51602-0001" in res.stdout and str(good) in res.stdout
    assert fingerprint(tmp_path) == before


def test_data_read_all_bad_is_one_error_naming_them(tmp_path):
    files = [bad_spec(tmp_path / f"{k}.fits", specobj={"MJD": ("5A", ["mjd"])}) for k in "xyz"]
    res = cli("data", "read", *files)
    assert_fails(res, EXIT_DATA, *map(str, files))
    assert sum(ln.startswith("bad:") for ln in res.stderr.splitlines()) == 3


def test_denoise_traversal_plate_stays_in_out_and_is_reported(tmp_path, pca_model):
    inp = tmp_path / "in"
    trav = bad_spec(inp / "trav.fits", specobj={"PLATE": ("10A", ["../../etc"])})
    good = good_spec(inp / "good.fits")
    out = tmp_path / "deep" / "out"
    before = fingerprint(inp)
    res = cli("denoise", trav, good, "--model", pca_model, "--out", out, "--workers", "0", cwd=tmp_path)
    assert res.code == EXIT_PARTIAL and "Traceback" not in res.stderr, res.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert summary["n_ok"] == 1 and summary["n_bad"] == 1
    assert str(trav) in summary["bad"][0]["error"] and "SPECOBJ.PLATE" in summary["bad"][0]["error"]
    assert not (tmp_path / "etc").exists() and not (tmp_path / "deep" / "etc").exists()
    assert sorted(p.name for p in out.iterdir()) == ["good.denoised.fits", "good.done.json", "summary.json"]
    assert fingerprint(inp) == before
    assert Z > 0
