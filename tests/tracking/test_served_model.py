"""The served de-noiser: raw observed spectra (wave, flux, ivar, z) in, de-noised flux, sigma, mask
and quality flags out; through ``mlflow.pyfunc.load_model(...).predict`` (DataFrame and dict
forms) and end to end through ``mlflow models serve`` + a JSON POST."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from conftest import TINY_VAE_OVERRIDES
from specdenoise.config import parse_params
from specdenoise.survey.quality import Quality
from specdenoise.survey.readers import read_spectra


def _ppxf_spectra() -> list[Path]:
    import ppxf

    d = Path(ppxf.__file__).parent / "spectra"
    return [d / "NGC3073_SDSS_DR18.fits", d / "NGC3522_SDSS_DR18.fits"]


@pytest.fixture(scope="module")
def served(tmp_path_factory, tiny_processed, tiny_noisy):
    from specdenoise.evaluation.uncertainty import run_uncertainty
    from specdenoise.tracking.served import save_served_model
    from specdenoise.training.train import train_one

    root = tmp_path_factory.mktemp("served")
    params = parse_params(TINY_VAE_OVERRIDES)
    train_one("pca", 3, params, tiny_processed, tiny_noisy, root / "models" / "pca_3", tracking=False)
    run_uncertainty(params, tiny_processed, tiny_noisy, root / "models", root / "calibration", tracking=False)
    model_dir = root / "models" / "pca_3" / "model"
    path = save_served_model(root / "served", model_dir, root / "calibration" / "pca_3.json")
    return {"path": path, "model_dir": model_dir, "calibration": root / "calibration" / "pca_3.json"}


def _rows() -> pd.DataFrame:
    spectra = [s for p in _ppxf_spectra() for s in read_spectra(p)]
    rows = [
        {"id": s.id, "wave": s.wave.tolist(), "flux": s.flux.tolist(), "ivar": s.ivar.tolist(), "z": s.z}
        for s in spectra
    ]
    rows.append({**rows[0], "id": "far", "z": 1.2})  # outside the model's redshift range: flagged, not an error
    return pd.DataFrame(rows)


def _expected(served) -> tuple[np.ndarray, np.ndarray]:
    from specdenoise.survey.denoiser import Denoiser

    den = Denoiser.load(served["model_dir"], parse_params({}), served["calibration"])
    s = read_spectra(_ppxf_spectra()[1])[0]
    res = den.denoise(s.wave, s.flux, s.ivar, s.z)
    return res.denoised * res.norm, res.sigma * res.norm


def test_pyfunc_takes_raw_spectra_as_a_dataframe_or_columns(served):
    import mlflow

    model = mlflow.pyfunc.load_model(str(served["path"]))
    df = _rows()
    out = model.predict(df)
    assert list(out["id"]) == ["sdss-0945-52652-0470", "sdss-2488-54149-0001", "far"]
    assert list(out["quality"]) == [0, 0, int(Quality.Z_RANGE)] and out["flags"][2] == ["Z_RANGE"]
    flux, sigma = (np.asarray(out[k][1], float) for k in ("flux", "sigma"))
    want_flux, want_sigma = _expected(served)
    np.testing.assert_allclose(flux, want_flux, rtol=1e-5)
    np.testing.assert_allclose(sigma, want_sigma, rtol=1e-5)
    assert len(out["wave"][0]) == 825 and np.all(np.isnan(out["flux"][2]))
    assert 0.02 < out["masked_frac"][0] < 0.05 and sum(out["mask"][0]) > 0  # NGC 3073's blue end
    cols = model.predict(df.iloc[1:2].to_dict(orient="list"))
    np.testing.assert_allclose(np.asarray(cols["flux"][0], float), want_flux, rtol=1e-5)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_mlflow_models_serve_answers_a_json_post(served, tmp_path):
    port = _free_port()
    cli = str(Path(sys.executable).parent / "mlflow")
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    args = [cli, "models", "serve", "-m", str(served["path"]), "--env-manager", "local"]
    proc = subprocess.Popen(
        [*args, "--host", "127.0.0.1", "--port", str(port), "--workers", "1"],
        stdout=subprocess.DEVNULL,
        stderr=open(tmp_path / "serve.log", "w"),  # noqa: SIM115 - closed with the process
        env=env,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.time() + 180
        while True:
            try:
                with urllib.request.urlopen(f"{base}/ping", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                if time.time() > deadline or proc.poll() is not None:
                    pytest.fail(f"server did not start: {(tmp_path / 'serve.log').read_text()[-2000:]}")
                time.sleep(1)
        body = json.dumps({"dataframe_records": _rows().iloc[1:].to_dict(orient="records")}).encode()
        req = urllib.request.Request(f"{base}/invocations", body, {"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=120) as r:
            pred = json.loads(r.read())["predictions"]
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    assert [p["id"] for p in pred] == ["sdss-2488-54149-0001", "far"]
    assert [p["quality"] for p in pred] == [0, int(Quality.Z_RANGE)]
    want_flux, _ = _expected(served)
    np.testing.assert_allclose(np.asarray(pred[0]["flux"], float), want_flux, rtol=1e-5)
