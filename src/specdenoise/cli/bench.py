"""``specdenoise bench ...``: performance benchmarks (numbers into reports/, never asserted)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from specdenoise.cli.common import NOISY, SPECTRA, TEMPLATES, NoisyOpt, ParamsOpt, SpectraOpt, progress
from specdenoise.cli.denoise import DEFAULT_MODEL
from specdenoise.config import resolve_params
from specdenoise.errors import ConfigError
from specdenoise.evaluation.bench import bench_denoise, bench_pipeline, bench_training, bench_universe
from specdenoise.io import save_json

app = typer.Typer(help="Performance benchmarks (numbers into reports/, never asserted).", no_args_is_help=True)
OutOpt = Annotated[Path, typer.Option(help="JSON to write.")]


def _write(out: Path, res: object) -> None:
    save_json(out, res)
    typer.echo(json.dumps(res, indent=2))


@app.command("universe")
def bench_universe_cmd(
    params_path: ParamsOpt = None,
    n: Annotated[int, typer.Option(help="Galaxies to draw and synthesise.")] = 100_000,
    out: OutOpt = Path("reports/bench_universe.json"),
) -> None:
    """Time the universe end to end (catalogue + every spectrum, chunked) and its peak memory."""
    _write(out, bench_universe(resolve_params(params_path), n, progress=progress()))


@app.command("pipeline")
def bench_pipeline_cmd(
    params_path: ParamsOpt = None,
    observed: Annotated[Path, typer.Option(help="Observed spectra (for the preprocessing rate).")] = Path(
        "data/interim/observed.npz"
    ),
    spectra: SpectraOpt = SPECTRA,
    noisy: NoisyOpt = NOISY,
    model: Annotated[Path | None, typer.Option(help="Saved model for the inference roofline.")] = Path(
        "models/vae_6/model"
    ),
    templates: Annotated[Path | None, typer.Option(help="E-MILES templates for the line-fit rates.")] = TEMPLATES,
    n_ppxf: Annotated[int, typer.Option(help="Spectra fitted with pPXF (uncached) for its rate.")] = 20,
    out: OutOpt = Path("reports/bench_pipeline.json"),
) -> None:
    """Preprocessing rate, inference spectra/s against the measured matmul roofline, fast vs pPXF line fits."""
    model_s = str(model) if model and model.exists() else None
    templates_s = str(templates) if templates and templates.exists() else None
    _write(
        out,
        bench_pipeline(
            resolve_params(params_path), str(observed), str(spectra), str(noisy), model_s, templates_s, n_ppxf
        ),
    )


@app.command("train")
def bench_train_cmd(
    spectra: SpectraOpt = SPECTRA,
    noisy: NoisyOpt = NOISY,
    backends: Annotated[
        str, typer.Option(help="Comma-separated Keras backends to time side by side.")
    ] = "tensorflow,jax",
    families: Annotated[str, typer.Option(help="Comma-separated families (ae, vae).")] = "ae,vae",
    n: Annotated[int, typer.Option(help="Training spectra per epoch.")] = 8000,
    epochs: Annotated[int, typer.Option(help="Epochs timed (the first, with tracing, is reported apart).")] = 4,
    out: OutOpt = Path("reports/bench_train.json"),
) -> None:
    """Seconds per epoch of the paper-size AE/VAE (825-1000-900-800-800-6) on each Keras backend."""
    split = [b.strip() for b in backends.split(",")], [f.strip() for f in families.split(",")]
    _write(out, bench_training(split[0], split[1], str(spectra), str(noisy), n, epochs))


@app.command("denoise")
def bench_denoise_cmd(
    inputs: Annotated[list[Path], typer.Argument(help="FITS files to copy into the batch.")],
    model: Annotated[str, typer.Option("--model", "-m", help="Model URI or directory.")] = DEFAULT_MODEL,
    workers: Annotated[str, typer.Option(help="Comma-separated worker counts.")] = "1,2",
    copies: Annotated[int, typer.Option(help="Copies of each input in the batch.")] = 8,
    batch_size: Annotated[int, typer.Option(help="Files per Dask task.")] = 1,
    targets: Annotated[
        int,
        typer.Option(
            help="Build one DESI coadd of this many targets from the inputs (real coadds); 0: use them as they are."
        ),
    ] = 500,
    params_path: ParamsOpt = None,
    out: OutOpt = Path("reports/bench_denoise.json"),
) -> None:
    """End-to-end de-noising spectra/s with 1 and 2 local Dask workers beside the model-only rate, and peak memory."""
    try:
        counts = [int(w) for w in workers.split(",")]
    except ValueError:
        raise ConfigError(f"--workers: expected comma-separated integers, got '{workers}'") from None
    if copies <= 0 or targets < 0 or any(c <= 0 for c in counts):
        raise ConfigError("--copies and --workers must be positive, --targets >= 0")
    p = resolve_params(params_path)
    _write(out, bench_denoise(list(inputs), model, p, counts, copies, batch_size, targets=targets))
