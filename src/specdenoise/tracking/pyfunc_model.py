"""MLflow "models from code" entry for specdenoise families logged as pyfunc (no pickles).

MLflow executes this file when a pyfunc model logged by :mod:`specdenoise.training.train` is loaded;
the model itself is the saved directory passed as the ``model_dir`` artifact.
"""

from __future__ import annotations

import mlflow
import numpy as np


class SpecdenoisePyfunc(mlflow.pyfunc.PythonModel):
    """Takes noise-added normalised spectra (n, n_pix) and returns de-noised ones."""

    def load_context(self, context):
        from specdenoise.models import load_model

        self.model = load_model(context.artifacts["model_dir"])

    def predict(self, context, model_input: np.ndarray, params: dict | None = None) -> np.ndarray:
        x = np.asarray(model_input.values if hasattr(model_input, "values") else model_input, dtype=np.float32)
        return self.model.denoise(x)


mlflow.models.set_model(SpecdenoisePyfunc())
