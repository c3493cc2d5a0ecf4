"""MLflow "models from code" entry of the served de-noiser: raw observed spectra in, de-noised out.

MLflow executes this file when a model saved by :func:`specdenoise.tracking.served.save_served_model`
is loaded. Its artifacts are the saved model directory (``model_dir``, with its
``preprocess.json``) and optionally a calibration file (``calibration``).

Input: a pandas DataFrame (or the JSON ``dataframe_records`` / ``dataframe_split`` forms of
``mlflow models serve``), one row per spectrum: ``wave`` (array, observed-frame air A), ``flux``
(array, 1e-17 erg/s/cm^2/A), ``ivar`` (array), ``z`` (float); optional ``id`` and ``spectype``.
Output: a DataFrame, one row per input row (:func:`specdenoise.survey.targets.denoise_frame`).
"""

from __future__ import annotations

import mlflow
import pandas as pd


class RawSpectraModel(mlflow.pyfunc.PythonModel):
    """Rest frame, resampling, normalisation, de-noising with uncertainty and quality flags."""

    def load_context(self, context):
        from specdenoise.config import parse_params
        from specdenoise.survey.denoiser import Denoiser
        from specdenoise.survey.target_options import TARGET_OPTIONS

        cal = (context.artifacts or {}).get("calibration")
        self.den = Denoiser.load(context.artifacts["model_dir"], parse_params({}), cal)
        self.options = {**TARGET_OPTIONS, "add_noise": None, "seed": 0, **(context.model_config or {})}

    def predict(self, context, model_input: pd.DataFrame, params: dict | None = None) -> pd.DataFrame:
        from specdenoise.survey.targets import denoise_frame

        return denoise_frame(self.den, model_input, self.options)


mlflow.models.set_model(RawSpectraModel())
