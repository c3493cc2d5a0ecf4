"""``specdenoise data ...``: universe -> select -> observe -> preprocess -> noise -> validate -> summary."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer

from specdenoise.cli.common import (
    NOISY,
    SAMPLE,
    SPECTRA,
    NoisyOpt,
    ParamsOpt,
    SampleOpt,
    SpectraOpt,
    done,
    log,
    progress,
)
from specdenoise.config import resolve_params
from specdenoise.data import noise, preprocess, select, summary, validate
from specdenoise.sources import source

app = typer.Typer(
    help="Data stages: universe -> select -> observe -> preprocess -> noise -> validate.", no_args_is_help=True
)


@app.command("universe")
def universe_cmd(
    params_path: ParamsOpt = None,
    out: Annotated[Path, typer.Option(help="Output catalogue (Parquet) of the parent pool.")] = Path(
        "data/raw/universe.parquet"
    ),
    n: Annotated[int | None, typer.Option(help="Override universe.n_galaxies (e.g. for a quick look).")] = None,
) -> None:
    """Draw the embedded galaxy universe (an MPA-JHU-like catalogue with known truth), or read MPA-JHU \
(data.source sdss)."""
    t0 = time.perf_counter()
    p = resolve_params(params_path)
    line = source(p.data.source).run_universe(p, out, n)
    done("universe", t0, out=str(out))
    typer.echo(line)


@app.command("select")
def select_cmd(
    params_path: ParamsOpt = None,
    catalogue: Annotated[Path, typer.Option(help="Parent catalogue from `data universe`.")] = Path(
        "data/raw/universe.parquet"
    ),
    out: Annotated[Path, typer.Option(help="Selected sample (Parquet).")] = SAMPLE,
    report: Annotated[Path, typer.Option(help="Selection report (JSON).")] = Path("reports/selection.json"),
) -> None:
    """Select galaxies in bins of H-alpha flux and fix the train/test split."""
    t0 = time.perf_counter()
    p = resolve_params(params_path)
    rep = select.run(p.select, catalogue, out, report)
    for b in rep["bins"]:
        if b["shortfall"]:
            lo, hi = b["log_flux_lo"], b["log_flux_hi"]
            log.warning("bin %d (%.2f-%.2f): only %d of %d galaxies", b["bin"], lo, hi, b["selected"], p.select.per_bin)
    done("select", t0, n=rep["n_selected"])
    typer.echo(
        f"select: {rep['n_selected']} galaxies ({rep['n_train']} train / {rep['n_test']} test), "
        f"short bins {rep['short_bins']} -> {out}"
    )


@app.command("observe")
def observe_cmd(
    params_path: ParamsOpt = None,
    sample: Annotated[Path, typer.Option(help="Sample from `data select` (or any catalogue).")] = SAMPLE,
    out: Annotated[Path, typer.Option(help="Observed-frame spectra (.npz).")] = Path("data/interim/observed.npz"),
) -> None:
    """Observed-frame spectra of the sample: synthesised SDSS-like (noise-free truth, noisy flux, ivar) or read \
(data.source sdss)."""
    t0 = time.perf_counter()
    p = resolve_params(params_path)
    line = source(p.data.source).run_observe(p, sample, out, progress=progress())
    done("observe", t0)
    typer.echo(line)


@app.command("preprocess")
def preprocess_cmd(
    params_path: ParamsOpt = None,
    observed: Annotated[Path, typer.Option(help="Observed spectra from `data observe`.")] = Path(
        "data/interim/observed.npz"
    ),
    out: Annotated[Path, typer.Option(help="Preprocessed spectra (.npz).")] = SPECTRA,
) -> None:
    """Shift to the rest frame, resample onto the common grid (flux-conserving) and normalise."""
    t0 = time.perf_counter()
    line = preprocess.run(resolve_params(params_path).preprocess, observed, out)
    done("preprocess", t0)
    typer.echo(line)


@app.command("noise")
def noise_cmd(
    params_path: ParamsOpt = None,
    spectra: SpectraOpt = SPECTRA,
    out: Annotated[Path, typer.Option(help="Noise-added realisations at noise.sigma, the paper level (.npz).")] = NOISY,
    levels_dir: Annotated[
        Path | None,
        typer.Option(help="Folder for the other noise.levels (sigma_<level>.npz); omitted: paper level only."),
    ] = None,
    report: Annotated[Path | None, typer.Option(help="Continuum S/N per pixel of every level (JSON).")] = None,
) -> None:
    """Add the paper's Gaussian noise (seeded realisations, every noise level) and renormalise."""
    t0 = time.perf_counter()
    p = resolve_params(params_path)
    line = noise.run(p.noise, p.preprocess.norm, spectra, out, levels_dir, report)
    done("noise", t0)
    typer.echo(line)


@app.command("validate")
def validate_cmd(
    params_path: ParamsOpt = None,
    spectra: SpectraOpt = SPECTRA,
    noisy: NoisyOpt = NOISY,
    sample: SampleOpt = SAMPLE,
    selection: Annotated[Path, typer.Option(help="Selection report.")] = Path("reports/selection.json"),
    report: Annotated[Path, typer.Option(help="Validation report (JSON) to write.")] = Path("reports/validation.json"),
) -> None:
    """Validate shapes, normalisation, catalogue ranges, bin counts and noise level (great-expectations)."""
    t0 = time.perf_counter()
    line = validate.run(resolve_params(params_path), spectra, noisy, sample, selection, report)
    done("validate", t0)
    typer.echo(line)


@app.command("summary")
def summary_cmd(
    params_path: ParamsOpt = None,
    spectra: SpectraOpt = SPECTRA,
    noisy: NoisyOpt = NOISY,
    sample: SampleOpt = SAMPLE,
    out_json: Annotated[Path, typer.Option(help="Metrics (JSON).")] = Path("reports/data_summary.json"),
    out_md: Annotated[Path, typer.Option(help="Tables next to the paper's (Markdown).")] = Path(
        "reports/data_summary.md"
    ),
) -> None:
    """Class mix (Table 1) and PCA variance of clean and noise-added spectra (Tables 2-3) next to the paper."""
    t0 = time.perf_counter()
    text = summary.run(resolve_params(params_path), spectra, noisy, sample, out_json, out_md)
    done("summary", t0)
    typer.echo(text)
