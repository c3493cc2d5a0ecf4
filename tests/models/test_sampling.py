"""Chunked decoding of posterior draws gives the spread of decoding them all at once."""

from __future__ import annotations

import numpy as np

from specdenoise.models import sampling


def test_decoded_sd_in_chunks_equals_the_sd_of_all_draws(monkeypatch):
    import keras

    dec = keras.Sequential([keras.Input((3,)), keras.layers.Dense(16, activation="tanh"), keras.layers.Dense(7)])
    z = np.random.default_rng(0).standard_normal((10, 5, 3)).astype(np.float32)
    full = keras.ops.convert_to_numpy(dec(z.reshape(-1, 3))).reshape(10, 5, 7).std(axis=0, ddof=1)
    monkeypatch.setattr(sampling, "DECODE_ROWS", 12)  # 2 draws (10 rows) per call: 5 calls
    got = sampling.decoded_sd(dec, z)
    assert got.shape == (5, 7) and got.dtype == np.float32
    np.testing.assert_allclose(got, full, rtol=1e-5, atol=1e-7)
