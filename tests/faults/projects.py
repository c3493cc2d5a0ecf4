"""A tiny, real project folder for the fault tests of parameters, training, models, calibrations
and the MLflow store: ``params.yaml``, ``data/spectra.npz``, ``data/noisy.npz`` and a trained
``models/pca_2``. Built once per session (fixture ``fault_template``); every test gets its own
copy (fixture ``proj``), so a test may break files without touching another's.

The fixtures are in ``tests/faults/conftest.py``; the helpers here.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from conftest import TINY
from specdenoise.config import deep_merge

#: The session's parameters: the tiny universe, a small validation split, no search.
PARAMS = deep_merge(TINY, {"train": {"val_size": 20}, "search": {"trials": 0}})


def real_spectrum() -> Path:
    """A real SDSS spec-lite file shipped with ppxf (an input for ``denoise``)."""
    import ppxf

    return Path(ppxf.__file__).parent / "spectra" / "NGC3073_SDSS_DR18.fits"


def train_args(proj: Path, *extra: object) -> list[object]:
    """``train`` options reading the project's files (model and dimension go in ``extra``)."""
    return [
        "train",
        *extra,
        "--params",
        proj / "params.yaml",
        "--spectra",
        proj / "data" / "spectra.npz",
        "--noisy",
        proj / "data" / "noisy.npz",
    ]


def keras_model_dir(root: Path, n_pix: int = 825) -> Path:
    """A saved-model folder of a small, real (untrained) Keras AE: ``family.json`` + ``model.keras``."""
    import json

    import keras

    root.mkdir(parents=True, exist_ok=True)
    inp = keras.Input((n_pix,))
    out = keras.layers.Dense(n_pix)(keras.layers.Dense(2)(inp))
    keras.Model(inp, out).save(root / "model.keras")
    (root / "family.json").write_text(json.dumps({"family": "ae", "latent_dim": 2, "hyper": {}, "history": {}}))
    return root


def random_bytes(n: int, seed: int = 0) -> bytes:
    return np.random.default_rng(seed).integers(0, 256, n, dtype=np.uint8).tobytes()
