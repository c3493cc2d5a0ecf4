"""Fault cases of ``denoise`` resume, overflow and killed runs: a rerun redoes exactly the inputs
whose input or outputs changed (and says why), never writes inf/NaN, and cleans the temporary
files a ``kill -9`` left."""

from __future__ import annotations

import json
import os
import shutil

import numpy as np
from astropy.io import fits
from tests.faults import survey_cases
from tests.faults.harness import cli, cli_subprocess, fingerprint
from tests.faults.survey_cases import bad_spec, good_spec, scaled_flux

from specdenoise.errors import EXIT_OK, EXIT_PARTIAL
from specdenoise.io import KILL_HOOK_ENV, TEMP_RE
from specdenoise.survey.quality import Quality

OUT_NAME = "a.denoised.fits"  # one output per input (survey/fits_out.py)

pca_model = survey_cases.pca_model  # the module's fixture


def _denoise(inp, out, model, cwd, *extra):
    return cli("-v", "denoise", inp, "--model", model, "--out", out, "--workers", "0", *extra, cwd=cwd)


def _first_run(tmp_path, model):
    f = good_spec(tmp_path / "in" / "a.fits")
    out = tmp_path / "out"
    res = _denoise(f, out, model, tmp_path)
    assert res.code == EXIT_OK, res.stderr
    return f, out


def _summary(out):
    return json.loads((out / "summary.json").read_text())


def test_unchanged_rerun_skips_and_keeps_outputs(tmp_path, pca_model):
    f, out = _first_run(tmp_path, pca_model)
    before = fingerprint(out / OUT_NAME, out / "a.done.json")
    res = _denoise(f, out, pca_model, tmp_path)
    assert res.code == EXIT_OK and _summary(out)["n_skipped"] == 1 and _summary(out)["n_ok"] == 0
    assert fingerprint(out / OUT_NAME, out / "a.done.json") == before


def test_different_input_with_the_same_name_is_redone(tmp_path, pca_model):
    f, out = _first_run(tmp_path, pca_model)
    with fits.open(out / OUT_NAME) as h:
        first = np.array(h["INPUT"].data[0])
    other = tmp_path / "other" / "a.fits"  # another galaxy, same file name, same ids
    shutil.copyfile(good_spec(tmp_path / "tmp.fits", z=0.05), other.parent.mkdir() or other)
    res = _denoise(other, out, pca_model, tmp_path)
    assert res.code == EXIT_OK and _summary(out)["n_ok"] == 1, res.stderr
    assert "input changed" in res.stderr and str(other) in res.stderr
    with fits.open(out / OUT_NAME) as h:
        assert abs(h["METADATA"].data["Z"][0] - 0.05) < 1e-6 and not np.allclose(h["INPUT"].data[0], first)


def test_input_edited_in_place_is_redone(tmp_path, pca_model):
    f, out = _first_run(tmp_path, pca_model)
    scaled_flux(f, 7.0, slice(1000, 1010))  # same name and size, other content
    res = _denoise(f, out, pca_model, tmp_path)
    assert res.code == EXIT_OK and _summary(out)["n_ok"] == 1 and "input changed" in res.stderr


def test_zero_byte_output_is_redone(tmp_path, pca_model):
    f, out = _first_run(tmp_path, pca_model)
    good = (out / OUT_NAME).read_bytes()
    (out / OUT_NAME).write_bytes(b"")
    res = _denoise(f, out, pca_model, tmp_path)
    assert res.code == EXIT_OK and _summary(out)["n_ok"] == 1
    assert f"output {OUT_NAME} is empty" in res.stderr
    assert len((out / OUT_NAME).read_bytes()) == len(good)


def test_deleted_output_is_redone(tmp_path, pca_model):
    f, out = _first_run(tmp_path, pca_model)
    (out / OUT_NAME).unlink()
    res = _denoise(f, out, pca_model, tmp_path)
    assert res.code == EXIT_OK and (out / OUT_NAME).stat().st_size > 0
    assert f"output {OUT_NAME} missing" in res.stderr


def test_edited_output_is_redone(tmp_path, pca_model):
    f, out = _first_run(tmp_path, pca_model)
    data = bytearray((out / OUT_NAME).read_bytes())
    data[-100] ^= 0xFF  # same size, one byte flipped
    (out / OUT_NAME).write_bytes(bytes(data))
    res = _denoise(f, out, pca_model, tmp_path)
    assert res.code == EXIT_OK and f"output {OUT_NAME} changed" in res.stderr
    assert _summary(out)["n_ok"] == 1


def test_garbage_resume_record_is_redone(tmp_path, pca_model):
    f, out = _first_run(tmp_path, pca_model)
    (out / "a.done.json").write_text("{not json")
    res = _denoise(f, out, pca_model, tmp_path)
    assert res.code == EXIT_OK and "Traceback" not in res.stderr and _summary(out)["n_ok"] == 1
    assert json.loads((out / "a.done.json").read_text())["input"]["size"] == f.stat().st_size


def test_changed_options_are_redone(tmp_path, pca_model):
    f, out = _first_run(tmp_path, pca_model)
    res = _denoise(f, out, pca_model, tmp_path, "--add-noise", "0.04")
    assert res.code == EXIT_OK and "options changed" in res.stderr and _summary(out)["n_ok"] == 1


def test_record_holds_input_and_output_hashes(tmp_path, pca_model):
    import hashlib

    f, out = _first_run(tmp_path, pca_model)
    rec = json.loads((out / "a.done.json").read_text())
    assert rec["input"]["sha256"] == hashlib.sha256(f.read_bytes()).hexdigest()
    (o,) = rec["outputs"]
    assert o["name"] == OUT_NAME and o["sha256"] == hashlib.sha256((out / OUT_NAME).read_bytes()).hexdigest()
    assert rec["options"]["model_identity"]["family"] == "pca"


def test_flux_overflowing_float32_everywhere_is_a_flagged_bad_input(tmp_path, pca_model):
    # a target whose every pixel overflows float32 is a flagged row (BAD_INPUT), never inf in a file
    bad = scaled_flux(tmp_path / "in" / "huge.fits", 1e38)
    good = good_spec(tmp_path / "in" / "a.fits")
    out = tmp_path / "out"
    res = cli("denoise", bad, good, "--model", pca_model, "--out", out, "--workers", "0", cwd=tmp_path)
    assert res.code == EXIT_OK and "Traceback" not in res.stderr, res.stderr
    assert _summary(out)["flags"]["BAD_INPUT"] == 1  # (the tiny PCA also calls the good target OUT_OF_DOMAIN)
    with fits.open(out / "huge.denoised.fits") as h:
        assert h["METADATA"].data["QUALITY"][0] & int(Quality.BAD_INPUT)
        for name in ("FLUX", "SIGMA", "INPUT", "IVAR"):
            assert not np.isinf(h[name].data).any(), name
    _all_finite(out / OUT_NAME)


def test_ivar_overflowing_float32_on_some_pixels_masks_them(tmp_path, pca_model):
    # ivar 1e37 (fits float32) times norm**2 (~1e3) overflows float32 on those pixels only
    f = good_spec(tmp_path / "in" / "a.fits")
    with fits.open(f) as h:
        ivar = np.asarray(h["COADD"].data["ivar"]).copy()
    ivar[2000:2003] = 1e37
    f = bad_spec(f, coadd={"ivar": ("E", ivar)})
    out = tmp_path / "out"
    res = cli("denoise", f, "--model", pca_model, "--out", out, "--workers", "0", cwd=tmp_path)
    assert res.code == EXIT_OK, res.stderr
    ivar = _all_finite(out / OUT_NAME)
    assert (ivar == 0).sum() >= 3


def _all_finite(path):
    with fits.open(path) as h:
        for name in ("WAVELENGTH", "FLUX", "INPUT", "IVAR"):
            assert np.all(np.isfinite(h[name].data)), name
        return np.array(h["IVAR"].data[0])


def test_killed_run_leaves_only_a_pid_temp_that_the_next_run_removes(tmp_path, pca_model):
    f = good_spec(tmp_path / "in" / "a.fits")
    out = tmp_path / "out"
    args = ("denoise", f, "--model", pca_model, "--out", out, "--workers", "0")
    res = cli_subprocess(*args, cwd=tmp_path, env={KILL_HOOK_ENV: "*.denoised.fits"})
    assert res.code == -9, res.stderr  # SIGKILL right after the output's temporary file was made
    left = sorted(p.name for p in out.iterdir())
    temps = [n for n in left if TEMP_RE.match(n)]
    assert len(temps) == 1 and (out / temps[0]).stat().st_size == 0 and OUT_NAME + "." in "." + temps[0][1:]
    assert not (out / OUT_NAME).exists() and not (out / "a.done.json").exists() and not (out / "summary.json").exists()
    assert ".specdenoise.lock" in left  # the dead run's lock: taken over below
    res = _denoise(f, out, pca_model, tmp_path)
    assert res.code == EXIT_OK, res.stderr
    assert f"removed {out / temps[0]}" in res.stderr and "taking over the lock" in res.stderr
    assert sorted(p.name for p in out.iterdir()) == sorted(["a.done.json", OUT_NAME, "summary.json"])


def test_temp_files_of_live_processes_are_kept(tmp_path, pca_model):
    f, out = _first_run(tmp_path, pca_model)
    live = out / f".x.fits.p{os.getpid()}.abcdefgh.fits"  # this process is alive
    live.write_bytes(b"")
    assert _denoise(f, out, pca_model, tmp_path).code == EXIT_OK
    assert live.exists()


def test_killed_dask_worker_temps_are_removed_by_the_next_run(tmp_path, pca_model):
    f = good_spec(tmp_path / "in" / "a.fits")
    out = tmp_path / "out"
    args = ("denoise", f, "--model", pca_model, "--out", out, "--workers", "1")
    env = {KILL_HOOK_ENV: "*.denoised.fits", "DASK_DISTRIBUTED__SCHEDULER__ALLOWED_FAILURES": "0"}
    res = cli_subprocess(*args, cwd=tmp_path, env=env)
    assert res.code == EXIT_PARTIAL and "Traceback" not in res.stderr, res.stderr[-2000:]
    (err,) = [b["error"] for b in _summary(out)["bad"]]
    assert str(f) in err and "worker failed" in err
    temps = [p for p in out.iterdir() if TEMP_RE.match(p.name)]
    assert temps and all(p.stat().st_size == 0 for p in temps) and not (out / OUT_NAME).exists()
    res = _denoise(f, out, pca_model, tmp_path)
    assert res.code == EXIT_OK, res.stderr
    assert all(f"removed {p}" in res.stderr for p in temps)
    assert sorted(p.name for p in out.iterdir()) == sorted(["a.done.json", OUT_NAME, "summary.json"])
