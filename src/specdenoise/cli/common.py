"""What every command shares: the options and their defaults, stage logging and progress bars."""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path
from typing import Annotated

import typer
from typer.core import TyperOption

from specdenoise.logs import VERBOSE_ENV

log = logging.getLogger("specdenoise")

ParamsOpt = Annotated[
    Path | None,
    typer.Option("--params", "-p", help="Parameters file (default: params.yaml here, else the built-in defaults)."),
]
SpectraOpt = Annotated[Path, typer.Option("--spectra", help="Preprocessed spectra (.npz from `data preprocess`).")]
NoisyOpt = Annotated[Path, typer.Option("--noisy", help="Noise realisations (.npz from `data noise`).")]
SampleOpt = Annotated[Path, typer.Option("--sample", help="Selected sample (Parquet from `data select`).")]
ModelsDirOpt = Annotated[Path, typer.Option(help="Folder of trained models (<family>_<dim>/).")]
TemplatesOpt = Annotated[Path, typer.Option(help="E-MILES templates from `specdenoise templates`.")]
SPECTRA = Path("data/processed/spectra.npz")
NOISY = Path("data/processed/noisy.npz")
SAMPLE = Path("data/interim/sample.parquet")
TEMPLATES = Path("data/external/emiles_ppxf826.npz")
STATE = {"progress": True, "debug": False}


#: Environment variables that quiet libraries at the source (read when they are imported, so set
#: before any of them is): TensorFlow's C++ / absl log (3 = errors hidden too: the "cuInit"
#: error on a machine without a GPU), analytics pings, and MLflow's artifact download bars.
QUIET_ENV = {
    "TF_CPP_MIN_LOG_LEVEL": "3",
    "GX_ANALYTICS_ENABLED": "false",
    "DVC_NO_ANALYTICS": "1",
    "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
}
#: Python loggers of libraries held at WARNING by default (``--verbose`` brings back their INFO/DEBUG);
#: ``distributed.nanny`` at ERROR: its "Worker process still alive after 4 s, killing" on a normal shutdown.
QUIET_LOGGERS = {
    "great_expectations": logging.WARNING,
    "matplotlib": logging.WARNING,
    "numexpr": logging.WARNING,
    "absl": logging.WARNING,
    "tensorflow": logging.WARNING,
    "mlflow": logging.WARNING,
    "alembic": logging.WARNING,
    "distributed": logging.WARNING,
    "distributed.nanny": logging.ERROR,
    "astropy": logging.WARNING,
}


def quiet_libraries(verbose: bool) -> None:
    """Hold third-party logs back unless ``verbose`` (then TensorFlow logs everything too)."""
    if verbose:
        os.environ["TF_CPP_MIN_LOG_LEVEL"] = "0"
        os.environ[VERBOSE_ENV] = "1"
    else:
        for key, value in QUIET_ENV.items():
            os.environ.setdefault(key, value)
    for name, level in QUIET_LOGGERS.items():
        logging.getLogger(name).setLevel(logging.DEBUG if verbose else level)


def _flag_type_rich(self: object, ctx: object) -> str | None:
    """Typer 0.29 shows boolean flags as ``--quiet <bool>`` although they take no value: show nothing."""
    if getattr(self, "is_flag", False) and not getattr(self, "secondary_opts", None):
        return None
    return _TYPE_RICH(self, ctx)


_TYPE_RICH = TyperOption.display_type_rich
TyperOption.display_type_rich = _flag_type_rich  # type: ignore[method-assign]


def done(what: str, t0: float, **facts: object) -> None:
    """Log that a stage finished, with its wall time and a few facts."""
    extra = ", ".join(f"{k}={v}" for k, v in facts.items())
    log.info("%s done in %.1f s%s", what, time.perf_counter() - t0, f" ({extra})" if extra else "")


def progress() -> bool:
    """Whether progress bars are wanted (not ``--quiet`` and stderr is a terminal)."""
    return STATE["progress"]
