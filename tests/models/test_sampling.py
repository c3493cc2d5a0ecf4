"""Keras nets called in bounded batches: chunked decoding of posterior draws, batched eager inference."""

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


def test_predict_batched_equals_predict_on_uneven_batches_and_keeps_every_output(monkeypatch):
    import keras

    inp = keras.Input((6,))
    hidden = keras.layers.Dense(8, activation="relu")(inp)
    one = keras.Model(inp, keras.layers.Dense(6)(hidden))
    two = keras.Model(inp, [keras.layers.Dense(2)(hidden), keras.layers.Dense(3)(hidden)])
    x = np.random.default_rng(1).standard_normal((23, 6)).astype(np.float32)
    monkeypatch.setattr(sampling, "PREDICT_BATCH", 5)  # 4 full batches and one of 3 rows
    np.testing.assert_allclose(sampling.predict_batched(one, x), one.predict(x, verbose=0), rtol=1e-6, atol=1e-7)
    got = sampling.predict_batched(two, x)
    want = two.predict(x, verbose=0)
    assert isinstance(got, list) and [g.shape for g in got] == [(23, 2), (23, 3)]
    for g, w in zip(got, want, strict=True):
        np.testing.assert_allclose(g, w, rtol=1e-6, atol=1e-7)
    assert sampling.predict_batched(one, x[:0]).shape == (0, 6)  # no rows in, no rows out


def test_evaluating_many_models_logs_no_retracing_warning(caplog):
    """TensorFlow counted the traces of ``Model.predict`` over models and warned of retracing."""
    import keras

    x = np.random.default_rng(2).standard_normal((40, 6)).astype(np.float32)
    for k in range(8):
        net = keras.Sequential([keras.Input((6,)), keras.layers.Dense(4 + k), keras.layers.Dense(6)])
        sampling.predict_batched(net, x)
        sampling.predict_batched(net, x[:7])
    assert "retracing" not in caplog.text
