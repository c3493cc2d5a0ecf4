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
from specdenoise.io import save_json, save_text

# The benchmark modules are imported in each command, not here: they load the survey and fitting stack,
# which every other command (every DVC stage's process) would otherwise pay for at start (~0.7 s measured).
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
    from specdenoise.evaluation.bench import bench_universe

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
    from specdenoise.evaluation.bench import bench_pipeline

    model_s = str(model) if model and model.exists() else None
    templates_s = str(templates) if templates and templates.exists() else None
    _write(
        out,
        bench_pipeline(
            resolve_params(params_path), str(observed), str(spectra), str(noisy), model_s, templates_s, n_ppxf
        ),
    )


@app.command("linefit")
def bench_linefit_cmd(
    params_path: ParamsOpt = None,
    spectra: SpectraOpt = SPECTRA,
    noisy: NoisyOpt = NOISY,
    sample: Annotated[Path, typer.Option(help="Selected sample with the true line fluxes.")] = Path(
        "data/interim/sample.parquet"
    ),
    templates: Annotated[Path, typer.Option(help="E-MILES templates.")] = TEMPLATES,
    n: Annotated[int, typer.Option(help="Noise-free test spectra fitted by both fitters.")] = 500,
    n_time: Annotated[int, typer.Option(help="Of those, fitted again by pPXF without cache for its rate.")] = 10,
    cache_dir: Annotated[Path, typer.Option(help="pPXF fit cache (shared with the lines stage).")] = Path(
        "data/interim/ppxf_cache"
    ),
    out: OutOpt = Path("reports/bench_linefit.json"),
) -> None:
    """Fast fitter vs pPXF on noise-free spectra: bias/scatter per line against the true fluxes, speed ratio."""
    from specdenoise.evaluation.bench_linefit import bench_linefit

    if n < 1 or n_time < 1:
        raise ConfigError("--n and --n-time must be positive")
    _write(
        out,
        bench_linefit(resolve_params(params_path), spectra, noisy, sample, templates, n, n_time, cache_dir),
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
    from specdenoise.evaluation.bench import bench_training

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
    from specdenoise.evaluation.bench import bench_denoise

    try:
        counts = [int(w) for w in workers.split(",")]
    except ValueError:
        raise ConfigError(f"--workers: expected comma-separated integers, got '{workers}'") from None
    if copies <= 0 or targets < 0 or any(c <= 0 for c in counts):
        raise ConfigError("--copies and --workers must be positive, --targets >= 0")
    p = resolve_params(params_path)
    _write(out, bench_denoise(list(inputs), model, p, counts, copies, batch_size, targets=targets))


@app.command("posterior")
def bench_posterior_cmd(
    model: Annotated[
        Path | None,
        typer.Option(help="Saved posterior-family model directory (default models/posterior_<train.extra dim>/model)."),
    ] = None,
    bench_dir: Annotated[
        Path, typer.Option(help="A built pipeline (paper-family models, test split, DESI coadds, templates).")
    ] = Path("."),
    n_test: Annotated[int, typer.Option(help="Held-out universe spectra per S/N bin and noise shape.")] = 500,
    n_samples: Annotated[int, typer.Option(help="Posterior draws per spectrum for the line intervals.")] = 30,
    shapes: Annotated[str, typer.Option(help="Comma-separated noise shapes (white, sky, desi).")] = "white,sky,desi",
    seed: Annotated[int, typer.Option(help="Seed of the held-out draws and the noise.")] = 99,
    per_class: Annotated[
        int,
        typer.Option(
            help="Spectra of every galaxy class for the per-class table (0: none). 600: a calibrated cell's "
            "binomial sd is 0.019, so +-0.05 tests it (at 150, 0.038: 19 % of a calibrated method's cells miss)."
        ),
    ] = 600,
    n_exact: Annotated[
        int,
        typer.Option(help="Spectra drawn from the prior for the per-class coverage of the exact posterior (0: none)."),
    ] = 2000,
    n_library: Annotated[
        int,
        typer.Option(
            help="Clean universe spectra of the library posterior, the posterior under the universe's own "
            "population, per class at S/N 0.5-3 (0: none; 60,000: ~5 min)."
        ),
    ] = 60_000,
    params_path: ParamsOpt = None,
    out: OutOpt = Path("reports/posterior.json"),
    md: Annotated[Path, typer.Option(help="Markdown summary to write.")] = Path("reports/posterior.md"),
) -> None:
    """Evidence for the posterior family: coverage, loss and lines over S/N, real spectra, OOD rates."""
    from specdenoise.evaluation.posterior_bench import run_bench
    from specdenoise.evaluation.posterior_bench_report import render_markdown
    from specdenoise.models import load_model

    if per_class < 0:
        raise ConfigError(f"--per-class: must be >= 0 (0: no per-class table), got {per_class}")
    if n_library < 0:
        raise ConfigError(f"--n-library: must be >= 0 (0: no library posterior), got {n_library}")
    if n_exact < 0:
        raise ConfigError(f"--n-exact: must be >= 0 (0: no exact-posterior class table), got {n_exact}")
    p = resolve_params(params_path)
    if model is None:
        if "posterior" not in p.train.extra:
            raise ConfigError("--model: not given and train.extra has no posterior model")
        model = Path("models") / f"posterior_{p.train.extra['posterior']}" / "model"
    m = load_model(model)
    if not getattr(m, "noise_aware", False):
        raise ConfigError(f"--model: {model} is a '{m.family}' model, not a noise-aware posterior model")
    res = run_bench(m, p, bench_dir, n_test, n_samples, shapes.split(","), seed, per_class, n_exact, n_library)
    save_json(out, res)
    save_text(md, render_markdown(res))
    typer.echo(render_markdown(res))
