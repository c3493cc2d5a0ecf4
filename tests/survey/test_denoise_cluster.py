"""A real distributed run: ``dask scheduler`` and two ``dask worker`` processes on 127.0.0.1 with
TLS (self-signed certificates written to files), ``denoise --scheduler tls://...`` on a batch, and
outputs equal to those of ``--workers 0``. The client takes its TLS files from Dask's own
configuration (``DASK_DISTRIBUTED__COMM__TLS__*``), as on a real cluster."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits

from conftest import TINY_VAE_OVERRIDES
from specdenoise.config import DesiConfig, parse_params
from specdenoise.survey.synthetic import write_desi_coadd

BIN = Path(sys.executable).parent


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _tls_files(folder: Path) -> dict[str, str]:
    from distributed.security import Security

    sec = Security.temporary()  # one self-signed certificate and key (PEM text)
    files = {"ca": folder / "ca.pem", "cert": folder / "cert.pem", "key": folder / "key.pem"}
    files["ca"].write_text(sec.tls_ca_file)
    files["cert"].write_text(sec.tls_scheduler_cert)
    files["key"].write_text(sec.tls_scheduler_key)
    return {k: str(v) for k, v in files.items()}


@pytest.mark.slow
def test_tls_cluster_outputs_equal_in_process(tmp_path, tiny_processed, tiny_noisy):
    from specdenoise.data.desi import fetch_coadds
    from specdenoise.training.train import train_one

    train_one("pca", 3, parse_params(TINY_VAE_OVERRIDES), tiny_processed, tiny_noisy, tmp_path / "pca", tracking=False)
    model = tmp_path / "pca" / "model"
    cfg = DesiConfig()
    fetch_coadds(cfg, tmp_path / "desi")
    inputs = []
    for k in range(3):
        write_desi_coadd(tmp_path / "in" / f"coadd-t{k}.fits", [tmp_path / "desi" / c for c in cfg.coadds], 40, seed=k)
        inputs.append(str(tmp_path / "in" / f"coadd-t{k}.fits"))
    tls = _tls_files(tmp_path)
    port = _free_port()
    env = dict(os.environ, DASK_DISTRIBUTED__COMM__REQUIRE_ENCRYPTION="True")
    env.update(
        DASK_DISTRIBUTED__COMM__TLS__CA_FILE=tls["ca"],
        DASK_DISTRIBUTED__COMM__TLS__CLIENT__CERT=tls["cert"],
        DASK_DISTRIBUTED__COMM__TLS__CLIENT__KEY=tls["key"],
    )
    env.pop("MLFLOW_TRACKING_URI", None)
    tls_args = ["--tls-ca-file", tls["ca"], "--tls-cert", tls["cert"], "--tls-key", tls["key"]]
    addr = f"tls://127.0.0.1:{port}"
    log = open(tmp_path / "dask.log", "w")  # noqa: SIM115 - closed below
    procs = [
        subprocess.Popen(
            [str(BIN / "dask"), "scheduler", "--host", "127.0.0.1", "--port", str(port), "--no-dashboard", *tls_args],
            stdout=log,
            stderr=log,
            env=env,
        )
    ]
    try:
        time.sleep(3)
        for _ in range(2):
            cmd = [str(BIN / "dask"), "worker", addr, "--nthreads", "1", "--no-dashboard", "--host", "127.0.0.1"]
            procs.append(subprocess.Popen([*cmd, *tls_args], stdout=log, stderr=log, env=env))
        args = ["denoise", *inputs, "--model", str(model), "--batch-size", "1"]
        res = subprocess.run(
            [str(BIN / "specdenoise"), "-q", *args, "--scheduler", addr, "--out", str(tmp_path / "dask")],
            env=env,
            capture_output=True,
            text=True,
            timeout=400,
        )
        assert res.returncode == 0, res.stderr[-3000:] + (tmp_path / "dask.log").read_text()[-3000:]
        assert '"workers": 2' in res.stdout and '"n_ok": 3' in res.stdout
    finally:
        for p in reversed(procs):
            p.terminate()
        for p in procs:
            p.wait(timeout=30)
        log.close()
    local = subprocess.run(
        [str(BIN / "specdenoise"), "-q", *args, "--workers", "0", "--out", str(tmp_path / "local")],
        env=env,
        capture_output=True,
        text=True,
        timeout=400,
    )
    assert local.returncode == 0, local.stderr[-3000:]
    for f in inputs:
        name = Path(f).name.replace(".fits", ".denoised.fits")
        with fits.open(tmp_path / "dask" / name) as a, fits.open(tmp_path / "local" / name) as b:
            for hdu in ("FLUX", "SIGMA", "INPUT", "IVAR", "MASK"):
                assert np.array_equal(a[hdu].data, b[hdu].data, equal_nan=hdu != "MASK"), (name, hdu)
            assert np.array_equal(a["METADATA"].data["QUALITY"], b["METADATA"].data["QUALITY"])
