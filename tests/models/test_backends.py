"""The same model code trains on the JAX backend (KERAS_BACKEND is fixed per process)."""

import json
import os
import subprocess
import sys

import pytest

CODE = """
import json, numpy as np, keras
from specdenoise.config import TrainConfig
from specdenoise.models import TrainingData, get_family
rng = np.random.default_rng(0)
clean = (1 + rng.standard_normal((400, 3)) @ rng.standard_normal((3, 30))).astype('float32')
noisy = (clean + 0.5 * rng.standard_normal(clean.shape)).astype('float32')
w = np.ones_like(clean)
d = TrainingData(noisy[100:], clean[100:], w[100:], noisy[:100], clean[:100], w[:100], np.arange(30), np.full(30, 0.5))
m = get_family('vae')(3, {'units': [32, 16], 'dropout': 0.0})
h = m.fit(d, TrainConfig(max_epochs=15, learning_rate=3e-3, batch_size=32), seed=0)
print('RESULT ' + json.dumps({
    'backend': keras.backend.backend(), 'first': h['loss'][0], 'last': h['loss'][-1],
    'shape': list(m.denoise(noisy[:4]).shape),
}))
"""


@pytest.mark.slow  # a fresh process importing JAX, Keras and TensorFlow (~45 s on 2 shared cores); `make test-all`
def test_vae_trains_on_jax():
    pytest.importorskip("jax")
    env = dict(os.environ, KERAS_BACKEND="jax", TF_CPP_MIN_LOG_LEVEL="3")
    res = subprocess.run([sys.executable, "-c", CODE], env=env, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    out = json.loads([ln for ln in res.stdout.splitlines() if ln.startswith("RESULT ")][-1][7:])
    assert out["backend"] == "jax"
    assert out["last"] < 0.5 * out["first"]
    assert out["shape"] == [4, 30]
