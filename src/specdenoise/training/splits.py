"""The training / validation / test split and the arrays a family trains on.

Inputs are the noise-added spectra of realisation ``train.realisation``; targets the
SDSS-like observed spectra (the paper's "original"), weighted by eq. 3. ``train.val_size``
spectra of the training split are held out for validation with ``train.seed``; the test split
is the fixed one from the selection stage.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from specdenoise.config import Params
from specdenoise.data.noise import draw_noisy, make_noise_model
from specdenoise.errors import DataError
from specdenoise.models.base import TrainingData
from specdenoise.models.losses import pixel_weights
from specdenoise.models.posterior_sim import clean_source


def split_indices(split: np.ndarray, params: Params) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Indices of the training, validation (``train.val_size`` drawn from the training split
    with ``train.seed``) and test spectra."""
    tc = params.train
    split = np.asarray(split).astype(str)
    train_idx = np.flatnonzero(split == "train")
    if tc.val_size >= len(train_idx):
        raise DataError(f"train.val_size: {tc.val_size} is not below the {len(train_idx)} training spectra")
    perm = np.random.default_rng(tc.seed).permutation(train_idx)
    return np.sort(perm[tc.val_size :]), np.sort(perm[: tc.val_size]), np.flatnonzero(split == "test")


def training_data(pre: Mapping, noisy: Mapping, params: Params) -> tuple[TrainingData, dict[str, np.ndarray]]:
    """Split preprocessed spectra into training / validation data and test arrays.

    Parameters
    ----------
    pre : Spectra or mapping
        ``flux``, ``ivar``, ``truth`` (n, n_pix), ``wave`` (n_pix,), ``split`` (n,).
    noisy : NoisySet or mapping
        ``noisy`` (r, n, n_pix), ``sigma`` (n_pix,).

    Returns
    -------
    (TrainingData, dict)
        The training and validation arrays (``meta["val_index"]``: validation indices), and
        the test arrays ``x``, ``y``, ``w``, ``truth`` (n_test, n_pix) and ``index`` (n_test,).
    """
    tc = params.train
    if tc.realisation >= noisy["noisy"].shape[0]:
        raise DataError(
            f"train.realisation: {tc.realisation} but only {noisy['noisy'].shape[0]} noise realisation(s) exist"
        )
    trn, val, test_idx = split_indices(pre["split"], params)
    x = noisy["noisy"][tc.realisation].astype(np.float32)
    y = pre["flux"].astype(np.float32)
    w = pixel_weights(pre["ivar"], tc.weight_softening)
    model = make_noise_model(params.noise)
    wave = pre["wave"]
    sigma = np.asarray(noisy["sigma"], dtype=np.float64)

    def fresh(clean: np.ndarray, g: np.random.Generator) -> np.ndarray:
        return draw_noisy(model, clean, wave, params.noise, params.preprocess.norm, g)[0]

    meta = {"n_train": len(trn), "n_val": len(val), "val_index": val}
    # fresh clean universe draws, for families that fit a clean prior (posterior)
    meta["clean_stream"] = clean_source(params.universe, params.preprocess)
    data = TrainingData(x[trn], y[trn], w[trn], x[val], y[val], w[val], wave, sigma, noise=fresh, meta=meta)
    test = {
        "x": x[test_idx],
        "y": y[test_idx],
        "w": w[test_idx],
        "truth": pre["truth"][test_idx].astype(np.float32),
        "index": test_idx,
    }
    return data, test
