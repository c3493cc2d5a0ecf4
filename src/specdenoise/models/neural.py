"""Autoencoder and variational autoencoder (paper section 3.2), Keras 3, ``keras.ops`` only.

Encoder: dense layers with LeakyReLU(0.3) and dropout; a latent dense layer (AE) or a mean /
log-variance pair and a sampling layer (VAE, KL term of eq. 5 added to the loss); a mirrored
decoder, a linear output of n_pix. Loss: the weighted MSE of eq. 3. Adam, batch 64, learning
rate 1e-4 / 10 when the loss fails to fall by 10 % in 5 epochs, early stop after 5 more (:class:`PaperSchedule`).

The saved ``model.keras`` is the *inference* graph of standard Keras layers only (the VAE decoder
is fed the posterior mean), so it loads in safe mode without custom objects. TensorFlow is the
default backend (``KERAS_BACKEND=jax`` for JAX). Both families are iterative and searchable,
take their fixed net from ``train.ae`` / ``train.vae`` (:class:`NetConfig`), are logged with the
Keras MLflow flavour; the VAE draws posterior samples and is the registered (``champion``) family.
"""

from __future__ import annotations

import importlib
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from specdenoise.errors import DataError
from specdenoise.logs import quiet_native_stderr
from specdenoise.models.base import DenoisingModel, TrainingData, register
from specdenoise.models.loading import load_keras
from specdenoise.models.losses import keras_weighted_mse
from specdenoise.models.neural_config import NetConfig
from specdenoise.models.sampling import decoded_sd, predict_batched
from specdenoise.models.search import baseline_trial, suggest

LEAKY_SLOPE = 0.3


def _keras():
    """Keras, imported (and its device set up) with TensorFlow's native start-up log held back."""
    if "keras" not in sys.modules:
        with quiet_native_stderr():
            keras = importlib.import_module("keras")
            keras.ops.convert_to_numpy(keras.ops.zeros(1))  # device set-up (the cuInit error) now
    return sys.modules["keras"]


def seed_everything(seed: int, deterministic: bool = True) -> None:
    keras = _keras()
    keras.utils.set_random_seed(seed)
    if deterministic and keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        try:
            tf.config.experimental.enable_op_determinism()
        except Exception:  # pragma: no cover - older TF
            pass


def _make_sampling_layer():
    keras = _keras()
    from keras import ops

    class Sampling(keras.layers.Layer):
        """z = mean + exp(log_var / 2) * eps; adds ``kl_weight`` x mean KL (eq. 5) to the loss."""

        def __init__(self, kl_weight: float = 1.0, seed: int | None = None, **kw):
            super().__init__(**kw)
            self.kl_weight = kl_weight
            self.seed_gen = keras.random.SeedGenerator(seed)

        def call(self, inputs, training=None):
            mean, log_var = inputs
            kl = -0.5 * ops.sum(1.0 + log_var - ops.square(mean) - ops.exp(log_var), axis=-1)
            self.add_loss(self.kl_weight * ops.mean(kl))
            eps = keras.random.normal(ops.shape(mean), seed=self.seed_gen)
            return mean + ops.exp(0.5 * log_var) * eps

    return Sampling


def build_networks(
    n_pix: int,
    latent_dim: int,
    units: list[int],
    dropout: float,
    variational: bool,
    kl_weight: float = 1.0,
    seed: int = 0,
):
    """Build ``(train_model, inference_model)`` sharing weights.

    The inference model maps noisy spectra to de-noised ones with standard layers only (the
    VAE uses the posterior mean); the training model adds the sampling layer and its KL loss.
    """
    keras = _keras()
    layers = keras.layers
    inp = keras.Input(shape=(n_pix,), name="noisy")
    h = inp
    for i, u in enumerate(units):
        h = layers.Dense(u, name=f"enc_dense_{i}")(h)
        h = layers.LeakyReLU(negative_slope=LEAKY_SLOPE, name=f"enc_act_{i}")(h)
        h = layers.Dropout(dropout, name=f"enc_drop_{i}")(h)
    dec_in = keras.Input(shape=(latent_dim,), name="latent")
    d = dec_in
    for i, u in enumerate(reversed(units)):
        d = layers.Dense(u, name=f"dec_dense_{i}")(d)
        d = layers.LeakyReLU(negative_slope=LEAKY_SLOPE, name=f"dec_act_{i}")(d)
        d = layers.Dropout(dropout, name=f"dec_drop_{i}")(d)
    out = layers.Dense(n_pix, name="denoised")(d)
    decoder = keras.Model(dec_in, out, name="decoder")
    if variational:
        mean = layers.Dense(latent_dim, name="z_mean")(h)
        log_var = layers.Dense(latent_dim, name="z_log_var")(h)
        z = _make_sampling_layer()(kl_weight=kl_weight, seed=seed, name="sampling")([mean, log_var])
        train = keras.Model(inp, decoder(z), name="vae_train")
        infer = keras.Model(inp, decoder(mean), name="vae")
        encoder = keras.Model(inp, [mean, log_var], name="encoder")
    else:
        z = layers.Dense(latent_dim, name="latent_code")(h)
        train = keras.Model(inp, decoder(z), name="ae")
        infer = train
        encoder = keras.Model(inp, z, name="encoder")
    return train, infer, encoder


def make_paper_schedule(monitor: str, min_rel_drop: float, patience: int, factor: float):
    """The paper's schedule as a Keras callback (built lazily so Keras loads only when used).

    The monitored loss must fall by ``min_rel_drop`` (10 %) below the last reference within
    ``patience`` epochs; otherwise the learning rate is multiplied by ``factor``, and if a
    further ``patience`` epochs pass without such a drop training stops. The best weights
    (lowest monitored loss) are restored at the end.
    """
    keras = _keras()

    class PaperSchedule(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            self.ref = np.inf
            self.ref_epoch = 0
            self.reduced = False
            self.best = np.inf
            self.best_weights = None
            self.stopped_epoch = None
            self.lr_drops: list[int] = []

        def on_epoch_end(self, epoch, logs=None):
            value = float((logs or {}).get(monitor, np.nan))
            if not np.isfinite(value):
                self.model.stop_training = True
                return
            if value < self.best:
                self.best = value
                self.best_weights = self.model.get_weights()
            if value <= self.ref * (1.0 - min_rel_drop):
                self.ref, self.ref_epoch, self.reduced = value, epoch, False
            elif epoch - self.ref_epoch >= patience:
                if not self.reduced:
                    lr = self.model.optimizer.learning_rate
                    lr.assign(float(np.asarray(lr)) * factor)
                    self.reduced, self.ref_epoch = True, epoch
                    self.lr_drops.append(epoch)
                else:
                    self.model.stop_training = True
                    self.stopped_epoch = epoch

        def on_train_end(self, logs=None):
            if self.best_weights is not None:
                self.model.set_weights(self.best_weights)

    return PaperSchedule()


class _FreshNoise:
    """Keras PyDataset that re-draws the added noise every epoch (``train.fresh_noise``)."""

    def __new__(cls, data: TrainingData, batch_size: int, seed: int):
        keras = _keras()

        class FreshNoise(keras.utils.PyDataset):
            def __init__(self):
                super().__init__()
                self.rng = np.random.default_rng(seed)
                self.order = np.arange(len(data.y))
                self.on_epoch_end()

            def __len__(self):
                return int(np.ceil(len(data.y) / batch_size))

            def __getitem__(self, i):
                idx = self.order[i * batch_size : (i + 1) * batch_size]
                return self.x[idx], np.concatenate([data.y[idx], data.w[idx]], axis=1)

            def on_epoch_end(self):
                self.x = data.noise(data.y, self.rng).astype(np.float32)
                self.rng.shuffle(self.order)

        return FreshNoise()


class _KerasDenoiser(DenoisingModel):
    """Dense (variational) autoencoder; ``hyper`` = ``{"units": [...], "dropout": ...}``.

    ``model`` is the Keras inference graph (noisy (n, n_pix) -> de-noised (n, n_pix)),
    ``encoder`` maps spectra to the latent code (the VAE's to its mean and log-variance).
    """

    variational: bool = False
    iterative = True
    seeded = True
    searchable = True
    mlflow_flavour = "keras"
    settings_model = NetConfig

    def __init__(self, latent_dim: int, hyper: dict[str, Any] | None = None) -> None:
        super().__init__(latent_dim, hyper)
        self.model = None  # inference model
        self.encoder = None

    def fit(
        self, data: TrainingData, cfg: Any, seed: int, callbacks: list | None = None, epochs: int | None = None
    ) -> dict[str, list[float]]:
        keras = _keras()
        seed_everything(seed)
        n_pix = data.y.shape[1]
        units = [int(u) for u in self.hyper["units"]]
        dropout = float(self.hyper["dropout"])
        train, infer, encoder = build_networks(
            n_pix, self.latent_dim, units, dropout, self.variational, cfg.kl_weight, seed
        )
        train.compile(optimizer=keras.optimizers.Adam(learning_rate=cfg.learning_rate), loss=keras_weighted_mse(n_pix))
        schedule = make_paper_schedule(cfg.monitor, cfg.min_rel_drop, cfg.patience, cfg.lr_factor)
        y_val = np.concatenate([data.y_val, data.w_val], axis=1)
        t0 = time.perf_counter()
        if cfg.fresh_noise and data.noise is not None:
            hist = train.fit(
                _FreshNoise(data, cfg.batch_size, seed),
                validation_data=(data.x_val, y_val),
                epochs=epochs or cfg.max_epochs,
                callbacks=[schedule, *(callbacks or [])],
                verbose=0,
            )
        else:
            y = np.concatenate([data.y, data.w], axis=1)
            hist = train.fit(
                data.x,
                y,
                validation_data=(data.x_val, y_val),
                batch_size=cfg.batch_size,
                epochs=epochs or cfg.max_epochs,
                callbacks=[schedule, *(callbacks or [])],
                verbose=0,
                shuffle=True,
            )
        seconds = time.perf_counter() - t0
        self.model, self.encoder = infer, encoder
        self.history = {
            k: [float(v) for v in vals]
            for k, vals in hist.history.items()
            if k in ("loss", "val_loss", "learning_rate")
        }
        n_ep = len(self.history.get("loss", []))
        self.history["seconds_per_epoch"] = [seconds / max(n_ep, 1)]
        self.history["lr_drops"] = [float(e) for e in schedule.lr_drops]
        return self.history

    @classmethod
    def suggest_hyper(cls, trial: Any, search_cfg: Any) -> dict[str, Any]:
        """The paper's space (:func:`specdenoise.models.search.suggest`): ``{"dropout", "units"}``."""
        return suggest(trial, search_cfg)

    @classmethod
    def baseline_trial(cls, train_cfg: Any, search_cfg: Any) -> dict[str, Any] | None:
        """Trial parameters of the fixed ``train.<family>`` net (:func:`specdenoise.models.search.baseline_trial`)."""
        return baseline_trial(train_cfg.settings(cls.family), search_cfg)

    def native_model(self) -> Any:
        """The Keras inference model (for ``mlflow.keras.log_model``)."""
        return self.model

    def denoise(self, x: np.ndarray) -> np.ndarray:
        return np.asarray(predict_batched(self.model, x), dtype=np.float32)

    def encode(self, x: np.ndarray) -> np.ndarray:
        out = predict_batched(self.encoder, x)
        return np.asarray(out[0] if isinstance(out, list) else out)

    def n_parameters(self) -> int:
        return int(self.model.count_params())

    def input_size(self) -> int | None:
        return None if self.model is None else self.model.input_shape[-1]

    def _save_files(self, path: Path) -> None:
        self.model.save(path / "model.keras")
        if self.encoder is not None:
            self.encoder.save(path / "encoder.keras")

    @classmethod
    def _load_files(cls, path: Path, latent_dim: int, hyper: dict[str, Any]) -> _KerasDenoiser:
        m = cls(latent_dim, hyper)
        m.model = load_keras(path / "model.keras")
        if (path / "encoder.keras").exists():
            m.encoder = load_keras(path / "encoder.keras")
        return m


@register
class AEDenoiser(_KerasDenoiser):
    """Autoencoder: a dense latent code of ``latent_dim``."""

    family = "ae"
    variational = False


@register
class VAEDenoiser(_KerasDenoiser):
    """Variational autoencoder: de-noises with the posterior mean; draws posterior samples."""

    family = "vae"
    variational = True
    has_posterior = True
    registry_candidate = True

    def posterior_ready(self) -> bool:
        """True when the encoder (posterior mean and log-variance) and the inference model are loaded."""
        return self.encoder is not None and self.model is not None

    def _decoder(self):
        try:
            return self.model.get_layer("decoder")
        except ValueError:
            raise DataError("model: the VAE inference graph has no nested 'decoder' model") from None

    def posterior(self, x: np.ndarray, n_samples: int, seed: int, batch: int = 512) -> tuple[np.ndarray, np.ndarray]:
        """De-noised spectra and the spread of decoded posterior samples.

        The encoder gives the posterior mean and log-variance of every spectrum's latent code;
        ``n_samples`` draws ``z = mean + exp(log_var / 2) * eps`` (``eps`` from numpy
        ``default_rng(seed)``, drawn batch by batch) go through the decoder nested in the
        inference graph.

        Parameters
        ----------
        x : ndarray, shape (n, n_pix)
            Noise-added (or observed) normalised spectra.
        n_samples : int
            Latent draws per spectrum (>= 2).
        seed : int
            Seed of the draws (numpy ``default_rng``).
        batch : int
            Spectra per batch (the draws depend on it; keep the default for reproducible numbers).

        Returns
        -------
        pred : ndarray, shape (n, n_pix)
            Decoder output at the posterior mean (identical to :meth:`denoise`), normalised flux.
        spread : ndarray, shape (n, n_pix)
            Standard deviation (ddof 1) over the decoded samples, normalised flux.

        Raises
        ------
        DataError
            ``n_samples`` < 2, or the encoder or the nested decoder is missing.
        """
        keras = _keras()

        if n_samples < 2:
            raise DataError(f"uncertainty.n_samples: needs at least 2 posterior samples, got {n_samples}")
        if not self.posterior_ready():
            raise DataError(
                "model: this VAE has no encoder loaded (saved without encoder.keras), so no posterior samples"
            )
        x = np.asarray(x, dtype=np.float32)
        dec = self._decoder()
        rng = np.random.default_rng(seed)
        pred = np.empty_like(x)
        spread = np.empty_like(x)
        for a in range(0, len(x), batch):
            xb = x[a : a + batch]
            mean, log_var = (keras.ops.convert_to_numpy(t) for t in self.encoder(xb, training=False))
            pred[a : a + len(xb)] = keras.ops.convert_to_numpy(dec(mean, training=False))
            eps = rng.standard_normal((n_samples, *mean.shape)).astype(np.float32)
            z = mean[None] + np.exp(0.5 * log_var)[None] * eps  # (n_samples, nb, latent)
            spread[a : a + len(xb)] = decoded_sd(dec, z)
        return pred, spread
