"""`specdenoise denoise` end to end on the real SDSS spectra shipped with ppxf, with a tiny VAE
registered in a temporary MLflow store as `specdenoise-vae@champion` (and calibrated by the
uncertainty stage): add-noise lowers the error, a corrupt file is reported while the rest of
the Dask batch completes, reruns resume, a bad --model is a one-line error, and the README
example runs as written."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import TINY_VAE_OVERRIDES
from specdenoise.config import parse_params

ROOT = Path(__file__).resolve().parents[2]
CLI = str(Path(sys.executable).parent / "specdenoise")
PARAMS = TINY_VAE_OVERRIDES


def _ppxf_spectra() -> list[Path]:
    import ppxf

    d = Path(ppxf.__file__).parent / "spectra"
    return [d / "NGC3073_SDSS_DR18.fits", d / "NGC3522_SDSS_DR18.fits"]


@pytest.fixture(scope="module")
def project(tmp_path_factory, tiny_processed, tiny_noisy):
    """A project folder with params.yaml, a trained + registered + calibrated tiny VAE."""
    import yaml

    from specdenoise import tracking
    from specdenoise.evaluation.uncertainty import run_uncertainty
    from specdenoise.training.train import train_one

    proj = tmp_path_factory.mktemp("proj")
    (proj / "params.yaml").write_text(yaml.safe_dump(PARAMS))
    params = parse_params(PARAMS)
    with pytest.MonkeyPatch.context() as mp:
        mp.delenv("MLFLOW_TRACKING_URI", raising=False)
        mp.chdir(proj)
        rec = train_one(
            "vae", 3, params, tiny_processed, tiny_noisy, proj / "models" / "vae_3", tracking=True, root=proj
        )
        tracking.setup(params.tracking, proj)
        champ = tracking.set_champion(params.tracking)
        run_uncertainty(params, tiny_processed, tiny_noisy, proj / "models", proj / "calibration", tracking=True)
    assert champ["run_id"] == rec["run_id"]
    return {"dir": proj, "run_id": rec["run_id"], "params_hash": tracking.benchmark_tag(params)}


def _run(args: list[str], cwd: Path, timeout: int = 300) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    return subprocess.run([CLI, *args], cwd=cwd, capture_output=True, text=True, timeout=timeout, env=env)


def test_denoise_real_sdss_file_with_add_noise(project):
    from astropy.io import fits

    spec = _ppxf_spectra()[0]
    # the SDSS pipeline classed NGC 3073 (z = 0.0038) as a STAR: a catalogue with a spectral-type
    # column overrides it (without it the target is flagged NOT_GALAXY and skipped)
    cat = project["dir"] / "types.csv"
    cat.write_text("ID,Z,SPECTYPE\nsdss-0945-52652-0470,0.00376266,GALAXY\n")
    res = _run(
        [
            "-q",
            "denoise",
            str(spec),
            "--redshifts",
            str(cat),
            "--id-column",
            "ID",
            "--model",
            "models:/specdenoise-vae@champion",
            "--out",
            "out",
            "--add-noise",
            "0.04",
            "--seed",
            "1",
            "--workers",
            "0",
        ],
        project["dir"],
    )
    assert res.returncode == 0, res.stderr[-3000:]
    summary = json.loads(res.stdout)
    assert summary["n_ok"] == 1 and summary["n_bad"] == 0 and summary["n_spectra"] == 1
    out = project["dir"] / "out"
    files = sorted(out.glob("*.fits"))
    assert [f.name for f in files] == ["NGC3073_SDSS_DR18.denoised.fits"]
    with fits.open(files[0]) as h:
        hdr, meta = h[0].header, h["METADATA"].data
        assert hdr["MODELURI"] == "models:/specdenoise-vae@champion"
        assert (hdr["MODELNAM"], hdr["MODELVER"]) == ("specdenoise-vae", "1")
        assert hdr["RUNID"] == project["run_id"] and hdr["PARHASH"] == project["params_hash"]
        assert hdr["CALIB"] is True and hdr["NSPEC"] == 1
        assert Path(hdr["INFILE"]).resolve() == spec.resolve() and hdr["SDVERS"] and hdr["ADDNOISE"] == 0.04
        assert h["FLUX"].header["BUNIT"] == "10**-17 erg/(s cm2 Angstrom)"
        assert (meta["PLATE"][0], meta["MJD"][0], meta["FIBERID"][0]) == (945, 52652, 470)
        assert meta["ID"][0] == "sdss-0945-52652-0470" and meta["QUALITY"][0] == 0
        assert meta["Z_SOURCE"][0] == "catalog" and meta["SPECTYPE"][0] == "GALAXY"
        norm = float(meta["NORM"][0])
        wave = np.asarray(h["WAVELENGTH"].data, float)
        clean, noisy, den, sig = (np.asarray(h[k].data[0], float) / norm for k in ("CLEAN", "INPUT", "FLUX", "SIGMA"))
        mask = np.asarray(h["MASK"].data[0])
        masked_frac = float(meta["MASKED_FRAC"][0])
    assert len(wave) == 825 and wave[0] == pytest.approx(3701.3, abs=1.0)
    # z = 0.0038: the observed spectrum starts at 3795 A (vacuum), i.e. rest ~3780 A (air): the
    # blue end of the grid is masked and reported, not silently extrapolated
    assert np.all(mask[wave < 3770]) and 0.02 < mask.mean() < 0.05
    assert masked_frac == pytest.approx(mask.mean())
    good = mask == 0
    err_noisy = np.sqrt(np.mean((noisy - clean)[good] ** 2))
    err_den = np.sqrt(np.mean((den - clean)[good] ** 2))
    assert err_noisy == pytest.approx(0.04, rel=0.15)
    assert err_den < 0.6 * err_noisy, (err_den, err_noisy)
    assert np.all(np.isfinite(sig)) and np.all(sig > 0)


def test_batch_in_process_reports_bad_files_and_resumes(project, tmp_path):
    """The same contract as the Dask test below, in this process (fast)."""
    from specdenoise.survey.batch import run_batch

    inputs = [*_ppxf_spectra(), tmp_path / "missing.fits", tmp_path / "empty.fits"]
    (tmp_path / "empty.fits").write_bytes(b"")
    params = parse_params(PARAMS)
    out = tmp_path / "out"
    s = run_batch(inputs, out, "models:/specdenoise-vae@champion", params, workers=0, root=project["dir"])
    assert (s["n_ok"], s["n_bad"], s["n_skipped"], s["n_spectra"]) == (2, 2, 0, 2)
    assert s["n_denoised"] == 1 and s["flags"] == {"NOT_GALAXY": 1}  # NGC 3073: CLASS = STAR in its SPECOBJ
    assert {Path(b["input"]).name for b in s["bad"]} == {"missing.fits", "empty.fits"}
    assert "missing.fits: file not found" in " ".join(b["error"] for b in s["bad"])
    s2 = run_batch(inputs, out, "models:/specdenoise-vae@champion", params, workers=0, root=project["dir"])
    assert (s2["n_ok"], s2["n_skipped"], s2["n_bad"]) == (0, 2, 2)
    # a finished input whose output vanished is not done any more
    next(out.glob("NGC3522*.fits")).unlink()
    s3 = run_batch(inputs, out, "models:/specdenoise-vae@champion", params, workers=0, root=project["dir"])
    assert (s3["n_ok"], s3["n_skipped"]) == (1, 1)


@pytest.mark.slow
def test_dask_batch_reports_corrupt_files_completes_the_rest_and_resumes(project, tmp_path):
    inputs = tmp_path / "in"
    inputs.mkdir()
    good = [shutil.copy(p, inputs / p.name) for p in _ppxf_spectra()]
    blob = Path(good[0]).read_bytes()
    (inputs / "truncated.fits").write_bytes(blob[: len(blob) // 3])
    (inputs / "notfits.fits").write_text("this is not a FITS file\n")
    args = [
        "denoise",
        *sorted(str(p) for p in inputs.iterdir()),
        "--model",
        "models:/specdenoise-vae@champion",
        "--out",
        str(tmp_path / "out"),
        "--workers",
        "2",
        "--batch-size",
        "1",
    ]
    res = _run(args, project["dir"])
    assert res.returncode == 1, res.stderr[-3000:]  # some inputs bad, the others complete
    noise = ("I0000", "absl", "cuInit", "distributed.", "Card is too long", "type hints", "Downloading artifacts")
    assert not [ln for ln in res.stderr.splitlines() if any(k in ln for k in noise)], res.stderr[-3000:]
    s = json.loads(res.stdout)
    assert (s["n_ok"], s["n_bad"], s["n_skipped"], s["workers"], s["scheduler"]) == (2, 2, 0, 2, "local")
    bad = {Path(b["input"]).name: b["error"] for b in s["bad"]}
    assert set(bad) == {"truncated.fits", "notfits.fits"}
    assert all(name in err and "\n" not in err for name, err in bad.items())
    out = tmp_path / "out"
    outputs = sorted(p.name for p in out.glob("*.fits"))
    assert outputs == ["NGC3073_SDSS_DR18.denoised.fits", "NGC3522_SDSS_DR18.denoised.fits"]
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # no temporary leftovers
    assert json.loads((out / "summary.json").read_text())["n_ok"] == 2
    mtimes = {p.name: p.stat().st_mtime_ns for p in out.glob("*.fits")}
    # rerun: finished inputs are skipped (resume), only the bad ones are tried again
    again = _run([*args[:-4], "--workers", "0"], project["dir"])
    s2 = json.loads(again.stdout)
    assert (s2["n_ok"], s2["n_skipped"], s2["n_bad"]) == (0, 2, 2)
    assert {p.name: p.stat().st_mtime_ns for p in out.glob("*.fits")} == mtimes
    # different options are not "done": they are redone
    third = _run([*args[:-4], "--workers", "0", "--add-noise", "0.04"], project["dir"])
    assert json.loads(third.stdout)["n_ok"] == 2


def test_bad_model_uri_is_a_one_line_error(project, tmp_path):
    spec = str(_ppxf_spectra()[0])
    cases = (
        ("models:/nope@champion", "model 'models:/nope@champion': "),
        ("models:/specdenoise-vae/99", "model 'models:/specdenoise-vae/99': "),
        (str(tmp_path / "missing"), "not a models:/ or runs:/ URI nor an existing model directory"),
    )
    for uri, msg in cases:
        res = _run(
            ["-q", "denoise", spec, "--model", uri, "--out", str(tmp_path / "o"), "--workers", "0"], project["dir"]
        )
        assert res.returncode == 3, res.stderr[-2000:]
        errors = [ln for ln in res.stderr.splitlines() if ln.startswith("error:")]
        assert len(errors) == 1 and msg in errors[0], res.stderr[-2000:]
        assert "Traceback" not in res.stderr
    assert not (tmp_path / "o").exists()  # nothing written


def test_readme_example_runs_as_written(project):
    text = (ROOT / "README.md").read_text()
    m = re.search(r"<!-- denoiser-example -->\s*```python\n(.*?)```", text, re.S)
    assert m, "README has no Denoiser example"
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    res = subprocess.run(
        [sys.executable, "-c", m.group(1)], cwd=project["dir"], capture_output=True, text=True, timeout=300, env=env
    )
    assert res.returncode == 0, res.stderr[-3000:]
    assert re.search(r"\(825,\) \(825,\) \(825,\) 3\.\d% masked, calibrated True", res.stdout), res.stdout
