"""Calibrations that do not belong to the model, or are not calibrations: one ``error:`` line naming
the calibration file (and both models where it is another model's), exit 3, nothing written."""

from __future__ import annotations

import json

import numpy as np
import pytest
from tests.faults.harness import assert_fails, cli, fingerprint
from tests.faults.projects import random_bytes, real_spectrum

from specdenoise.errors import EXIT_DATA
from specdenoise.evaluation.calibration import Calibration


def _denoise(proj, calibration):
    out = proj / "out"
    before = fingerprint(proj)
    model = proj / "models/pca_2/model"
    res = cli(
        "denoise",
        real_spectrum(),
        "--model",
        model,
        "--calibration",
        calibration,
        "--out",
        out,
        "--workers",
        0,
        cwd=proj,
    )
    assert not out.exists()
    assert fingerprint(proj) == before
    return res


@pytest.mark.parametrize(
    "method, name, n_pix, says",
    [
        ("vae-posterior", "vae_4", 825, ["vae_4", "pca_2", "posterior"]),
        ("residual", "pca_4", 825, ["pca_4", "pca_2"]),
        ("residual", "wiener_2", 825, ["wiener_2", "pca_2"]),
        ("residual", "pca_2", 500, ["pca_2", "500", "825"]),
    ],
    ids=["vae-calibration-on-pca", "other-dim", "other-family", "other-grid"],
)
def test_calibration_of_another_model(proj, method, name, n_pix, says):
    cal = proj / "calibration" / f"{name}.json"
    Calibration(method, np.full(n_pix, 0.5), 20, 3, 5, 100, name).save(cal)
    assert_fails(_denoise(proj, cal), EXIT_DATA, str(cal), *says)


@pytest.mark.parametrize(
    "content",
    [random_bytes(2048), b"\xff\xfe\x00{", b"{}", b'{"method": "residual", "scale": "wide"}', b"[1, 2, 3]", b"{"],
    ids=["binary", "utf16-bom", "empty-object", "bad-scale", "list", "broken-json"],
)
def test_not_a_calibration(proj, content):
    cal = proj / "cal.json"
    cal.write_bytes(content)
    assert_fails(_denoise(proj, cal), EXIT_DATA, str(cal))


def test_calibration_is_a_folder(proj):
    (proj / "calfolder").mkdir()
    assert_fails(_denoise(proj, proj / "calfolder"), EXIT_DATA, str(proj / "calfolder"))


def test_the_models_own_dvc_calibration_of_another_model(proj):
    """``calibration/pca_2.json`` beside ``models/`` (found by default) holding a VAE calibration."""
    cal = proj / "calibration" / "pca_2.json"
    cal.parent.mkdir()
    cal.write_text(json.dumps(Calibration("vae-posterior", np.ones(825), 20, 3, 5, 100, "vae_4").to_json()))
    out = proj / "out"
    res = cli(
        "denoise", real_spectrum(), "--model", proj / "models/pca_2/model", "--out", out, "--workers", 0, cwd=proj
    )
    assert_fails(res, EXIT_DATA, str(cal), "vae_4", "pca_2")
    assert not out.exists()
