"""Shared fixtures: the real configuration shrunk to a tiny universe (no mocks)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")

from specdenoise.config import Params, parse_params  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]

TINY = {
    "universe": {"n_galaxies": 3000, "seed": 11, "chunk_size": 50},
    "select": {"per_bin": 20, "n_test": 40, "seed": 5},
    "noise": {"n_realisations": 2, "seed": 9},
}

#: A small, fast-converging VAE (no search) for tests that need a trained de-noiser.
TINY_VAE_OVERRIDES = {
    "train": {
        "val_size": 60,
        "max_epochs": 40,
        "learning_rate": 1e-3,
        "batch_size": 32,
        "patience": 8,
        "vae": {"units": [64, 32], "dropout": 0.0},
    },
    "search": {"trials": 0},
    "uncertainty": {"n_samples": 20, "seed": 3, "window": 8},
}


def pytest_collection_modifyitems(config, items):
    """End-to-end tests first (minutes each: `dvc repro` of the smoke pipeline), the rest after.

    With ``-n 2 --dist loadfile --no-loadscope-reorder`` (``make test``) a worker starts on the
    longest file at once and the other worker runs the short ones meanwhile; started last, the
    pipeline test alone would set the wall time. The sort is stable: the order is otherwise kept.
    """
    tests = Path(__file__).resolve().parent
    e2e = tests / "integration"
    items.sort(key=lambda item: 0 if item.path.resolve().is_relative_to(e2e) else 1)


@pytest.fixture(scope="session")
def tiny_params() -> Params:
    return parse_params(TINY)


@pytest.fixture(scope="session")
def tiny_catalogue(tiny_params):
    from specdenoise.sources.universe import draw_catalogue

    return draw_catalogue(tiny_params.universe)


@pytest.fixture(scope="session")
def tiny_sample(tiny_catalogue, tiny_params):
    from specdenoise.data.select import select_sample

    return select_sample(tiny_catalogue, tiny_params.select)


@pytest.fixture(scope="session")
def tiny_observed(tiny_sample, tiny_params):
    from specdenoise.sources.observe import observe

    sample, _ = tiny_sample
    obs = observe(sample, tiny_params.universe)
    obs["split"] = np.asarray(sample["split"].astype(str).tolist(), dtype="U8")
    return obs


@pytest.fixture(scope="session")
def tiny_processed(tiny_observed, tiny_params):
    from specdenoise.data.preprocess import preprocess

    pre = preprocess(tiny_observed, tiny_params.preprocess)
    pre["split"] = tiny_observed["split"]
    return pre


@pytest.fixture(scope="session")
def tiny_noisy(tiny_processed, tiny_params):
    from specdenoise.data.noise import add_noise

    return add_noise(tiny_processed["flux"], tiny_processed["wave"], tiny_params.noise, tiny_params.preprocess.norm)


def emiles_download_failed(exc: BaseException) -> bool:
    """True for the one error that means "no registry access": the download of the ppxf 8.2.6 sdist failed."""
    from specdenoise.errors import DataError
    from specdenoise.physics.templates import EMILES_SDIST

    return isinstance(exc, DataError) and str(exc).startswith(
        f"{EMILES_SDIST}: cannot download the source distribution"
    )


@pytest.fixture(scope="session")
def emiles_templates(tmp_path_factory) -> Path:
    """The E-MILES template file: the pipeline's copy if it was built, else built once per test session.

    Skips only when the ppxf 8.2.6 source distribution cannot be downloaded (no package-registry
    access); any other failure of :func:`build_emiles` (a changed archive, a conversion bug) fails.
    """
    tpl = ROOT / "data/external/emiles_ppxf826.npz"
    if tpl.exists():
        return tpl
    from specdenoise.physics.templates import build_emiles

    out = tmp_path_factory.mktemp("emiles") / "emiles.npz"
    try:
        build_emiles(out)
    except Exception as exc:
        if not emiles_download_failed(exc):
            raise
        pytest.skip(
            f"E-MILES templates unavailable: the ppxf 8.2.6 sdist cannot be downloaded from the package "
            f"registry ({exc})"
        )
    return out


def desi_set(pre, noisy, amplitude: float = 2.33):
    """A DESI-like set (:class:`~specdenoise.data.artefacts.DesiSet`) made of the tiny spectra and
    their first noise realisation, with the given noise amplitude."""
    from specdenoise.data.artefacts import DesiSet

    n = len(pre["flux"])
    one = np.ones(n)
    return DesiSet(
        noisy=noisy["noisy"][:1],
        renorm=noisy["renorm"][:1],
        sigma=noisy["sigma"],
        ivar=pre["ivar"],
        clean=pre["flux"],
        wave=pre["wave"],
        id=pre["id"],
        split=pre["split"],
        dimming=one,
        clean_norm=one,
        amplitude=np.float64(amplitude),
        amplitude_coadds=np.float64(0.117),
        envelope_median=np.float64(0.04),
        z_desi=np.float64(0.1),
    )
