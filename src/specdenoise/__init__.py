"""specdenoise: de-noising galaxy optical spectra with PCA, autoencoders and VAEs.

Reproduces and extends Scourfield et al., "De-noising of galaxy optical spectra with
autoencoders". Importing the package is cheap: heavy dependencies (TensorFlow, MLflow,
great-expectations, bagpipes grids) load only inside the functions that need them.
"""

from specdenoise.version import __version__

__all__ = ["__version__", "Denoiser"]


def __getattr__(name: str):
    # lazy export: `from specdenoise import Denoiser` loads no TensorFlow until a model is loaded
    if name == "Denoiser":
        from specdenoise.survey.denoiser import Denoiser

        return Denoiser
    raise AttributeError(f"module 'specdenoise' has no attribute {name!r}")
