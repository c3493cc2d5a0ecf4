"""Keras nets called eagerly in bounded batches: inference (:func:`predict_batched`) and posterior
draws through a decoder (:func:`decoded_sd`)."""

from __future__ import annotations

from typing import Any

import numpy as np

#: Decoded rows per decoder call when drawing posterior samples: bounds a worker's memory
#: (decoding all 50 draws of a 512-spectrum batch at once took ~0.6 GB).
DECODE_ROWS = 4096
#: Rows per inference batch of :func:`predict_batched`.
PREDICT_BATCH = 1024


def predict_batched(net: Any, x: np.ndarray) -> Any:
    """``net`` called eagerly on ``x`` (n, P) in batches of :data:`PREDICT_BATCH` rows.

    Returns an array (n, ...) or, for a net with several outputs, a list of them. Not ``net.predict``:
    its compiled step is traced once per model, and TensorFlow counts those traces together over every
    model a process evaluates, warning of "excessive retracing" in the stages that evaluate many models
    (the outputs are bit-identical, and faster for a dense net).
    """
    import keras

    x = np.asarray(x, dtype=np.float32)
    parts = []
    for a in range(0, max(len(x), 1), PREDICT_BATCH):
        out = net(x[a : a + PREDICT_BATCH], training=False)
        outs = out if isinstance(out, (list, tuple)) else [out]
        parts.append([keras.ops.convert_to_numpy(o) for o in outs])
    joined = [np.concatenate([p[i] for p in parts]) for i in range(len(parts[0]))]
    return joined if len(joined) > 1 else joined[0]


def decoded_sd(dec: Any, z: np.ndarray) -> np.ndarray:
    """Standard deviation (ddof 1) over the draws of the decoded latent draws.

    Parameters
    ----------
    dec : keras.Model
        The decoder, latent (k, latent) -> spectra (k, n_pix).
    z : ndarray, shape (n_samples, n_spectra, latent)
        Latent draws, n_samples >= 2.

    Returns
    -------
    ndarray, shape (n_spectra, n_pix), float32
        Decoded at most :data:`DECODE_ROWS` rows at a time, sums accumulated in float64.
    """
    import keras

    n, nb, latent = z.shape
    step = max(1, DECODE_ROWS // max(nb, 1))
    s1 = s2 = 0.0
    for k in range(0, n, step):
        out = keras.ops.convert_to_numpy(dec(z[k : k + step].reshape(-1, latent), training=False))
        out = out.astype(np.float64).reshape(-1, nb, out.shape[-1])
        s1, s2 = s1 + out.sum(axis=0), s2 + (out * out).sum(axis=0)
    var = np.maximum(s2 - s1 * s1 / n, 0.0) / (n - 1)
    return np.sqrt(var).astype(np.float32)
