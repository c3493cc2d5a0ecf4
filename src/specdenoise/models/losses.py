"""Losses of the paper: the weighted MSE of eq. 3 and the KL term of eq. 5.

NumPy versions are used for evaluation (every family, same numbers); the Keras versions use
``keras.ops`` only, so they run on any Keras 3 backend.
"""

from __future__ import annotations

import numpy as np


def pixel_weights(ivar: np.ndarray, softening: float) -> np.ndarray:
    """Eq. 3 weights: inverse variance with a softening term, ``1 / (sigma^2 + softening)``.

    ``ivar`` is in normalised units; masked pixels (ivar = 0) get weight 0. The paper quotes a
    softening of 2e-6 "in the denominator", as in Portillo et al. (2020), whose code uses
    ``1 / (err^2 + 1/2e6)``; the value is ``train.weight_softening``.
    """
    ivar = np.asarray(ivar, dtype=float)
    good = ivar > 0
    var = np.where(good, 1.0 / np.where(good, ivar, 1.0), 0.0)
    return np.where(good, 1.0 / (var + softening), 0.0).astype(np.float32)


def weighted_mse(pred: np.ndarray, target: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Eq. 3 per spectrum: ``0.5 * sum_k w_k (pred_k - target_k)^2``, shape (n,)."""
    return 0.5 * np.sum(weights * (np.asarray(pred, float) - np.asarray(target, float)) ** 2, axis=-1)


def kl_divergence(mean: np.ndarray, log_var: np.ndarray) -> np.ndarray:
    """Eq. 5 as a positive divergence: ``-0.5 * sum_j (1 + log s^2 - mu^2 - s^2)``, shape (n,)."""
    return -0.5 * np.sum(1.0 + log_var - mean**2 - np.exp(log_var), axis=-1)


def keras_weighted_mse(n_pix: int):
    """Keras loss for targets packed as ``[target, weights]`` (n, 2 n_pix)."""
    from keras import ops

    def loss(y_true, y_pred):
        y = y_true[:, :n_pix]
        w = y_true[:, n_pix:]
        return 0.5 * ops.sum(w * ops.square(y_pred - y), axis=-1)

    loss.__name__ = "weighted_mse"
    return loss
