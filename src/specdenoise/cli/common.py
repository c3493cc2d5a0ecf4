"""What every command shares: the options and their defaults, stage logging and progress bars."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Annotated

import typer

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


def done(what: str, t0: float, **facts: object) -> None:
    """Log that a stage finished, with its wall time and a few facts."""
    extra = ", ".join(f"{k}={v}" for k, v in facts.items())
    log.info("%s done in %.1f s%s", what, time.perf_counter() - t0, f" ({extra})" if extra else "")


def progress() -> bool:
    """Whether progress bars are wanted (not ``--quiet`` and stderr is a terminal)."""
    return STATE["progress"]
