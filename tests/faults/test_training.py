"""Bad ``train`` inputs: latent dimension out of range, a bad ``--hyper-from`` file, noise-added
spectra that are not of the spectra given; one line naming the culprit, nothing written, the
earlier model untouched."""

from __future__ import annotations

import json

import numpy as np
import pytest
from tests.faults.harness import assert_fails, cli, fingerprint
from tests.faults.projects import random_bytes, train_args

from specdenoise.errors import EXIT_DATA, EXIT_USAGE


def _train(proj, *extra):
    before = fingerprint(proj)
    res = cli(*train_args(proj, *extra, "--no-tracking"), cwd=proj)
    assert fingerprint(proj) == before  # no model written, the earlier models/pca_2 unchanged
    return res


@pytest.mark.parametrize("dim", [2000, 825, 10**9])
def test_latent_dim_above_the_limit(proj, dim):
    res = _train(proj, "-m", "pca", "-d", dim)
    # limit: below the 825 pixels and at most the training spectra (tiny set: fewer than 825)
    assert_fails(res, EXIT_USAGE, "--latent-dim", str(dim), "outside 1..")


def test_latent_dim_zero(proj):
    assert_fails(_train(proj, "-m", "vae", "-d", 0), EXIT_USAGE, "--latent-dim", "positive")


@pytest.mark.parametrize(
    "content",
    [
        random_bytes(4096),
        b"\x89PNG\r\n\x1a\n" + random_bytes(100, 1),
        b"hyper: [not, json]\n",
        b'["hyper"]',
        b'{"hyper": [64, 32]}',
        b'{"hyper": {"units": "wide", "dropout": 2}}',
        b'{"family": "vae"}',
    ],
    ids=["random", "png", "yaml", "list", "hyper-list", "bad-units", "no-hyper"],
)
def test_bad_hyper_from_file(proj, content):
    bad = proj / "record.json"
    bad.write_bytes(content)
    res = _train(proj, "-m", "vae", "-d", 2, "--hyper-from", bad)
    assert_fails(res, EXIT_DATA, str(bad))


def test_hyper_from_a_folder(proj):
    res = _train(proj, "-m", "vae", "-d", 2, "--hyper-from", proj / "models")
    assert_fails(res, EXIT_DATA, str(proj / "models"))


@pytest.mark.parametrize("keep", [10, "pixels"])
def test_noisy_set_of_other_spectra(proj, keep):
    from specdenoise.data.artefacts import NoisySet, load_noisy

    noisy = proj / "data" / "noisy.npz"
    nz = load_noisy(noisy)
    cut = nz.noisy[:, :10] if keep == 10 else nz.noisy[:, :, :500]
    NoisySet(noisy=np.ascontiguousarray(cut), renorm=nz.renorm[:, : cut.shape[1]], sigma=nz.sigma).save(noisy)
    res = _train(proj, "-m", "pca", "-d", 2)
    assert_fails(res, EXIT_DATA, str(noisy), str(proj / "data" / "spectra.npz"))


def test_good_hyper_from_still_trains(proj):
    """A control: a real record.json of the same family is accepted (the refusals are specific)."""
    rec = proj / "record.json"
    rec.write_text(json.dumps({"hyper": {"units": [16, 8], "dropout": 0.0}}))
    from specdenoise.training.train import read_hyper

    assert read_hyper(rec, "vae") == {"units": [16, 8], "dropout": 0.0}


def test_missing_templates_for_the_interval_calibration(proj):
    res = _train(proj, "-m", "pca", "-d", 2, "--templates", "nowhere/emiles.npz")
    assert_fails(res, EXIT_DATA, "--templates", "nowhere/emiles.npz", "specdenoise templates")
