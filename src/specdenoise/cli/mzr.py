"""``specdenoise mzr ...``: the mass-metallicity test (paper section 5). One DVC stage each."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer

from specdenoise.cli.common import TEMPLATES, ParamsOpt, TemplatesOpt, done
from specdenoise.config import resolve_params
from specdenoise.data import desi, select
from specdenoise.data.artefacts import MZR_SAMPLE_COLUMNS
from specdenoise.evaluation import mzr

app = typer.Typer(
    help="Mass-metallicity test: star-forming sample -> DESI-like spectra -> VAE -> O3N2 MZR (Fig. 10).",
    no_args_is_help=True,
)


@app.command("select")
def select_cmd(
    params_path: ParamsOpt = None,
    catalogue: Annotated[Path, typer.Option(help="Parent catalogue from `data universe`.")] = Path(
        "data/raw/universe.parquet"
    ),
    out: Annotated[Path, typer.Option(help="Star-forming sample (Parquet).")] = Path("data/interim/sf_sample.parquet"),
    report: Annotated[Path, typer.Option(help="Selection report (JSON).")] = Path("reports/sf_selection.json"),
) -> None:
    """Star-forming galaxies in bins of H-alpha flux (mzr.select) with their train/test split."""
    t0 = time.perf_counter()
    rep = select.run(
        resolve_params(params_path).mzr.select, catalogue, out, report, columns=("class", *MZR_SAMPLE_COLUMNS)
    )
    done("mzr select", t0)
    bins = ", ".join(str(b["selected"]) for b in rep["bins"])
    typer.echo(
        f"mzr select: {rep['n_selected']} star-forming galaxies ({rep['n_train']} train / {rep['n_test']} test), "
        f"per bin [{bins}] -> {out}"
    )


@app.command("desi-noise")
def desi_noise_cmd(
    params_path: ParamsOpt = None,
    out: Annotated[Path, typer.Option(help="Noise shape (.npz); provenance JSON beside it.")] = Path(
        "data/external/desi/noise_shape.npz"
    ),
) -> None:
    """Fetch the real DESI coadds from the fastspecfit wheel and derive the noise shape sigma(lambda)."""
    t0 = time.perf_counter()
    line = desi.run_noise_shape(resolve_params(params_path).mzr.desi, out)
    done("mzr desi-noise", t0)
    typer.echo(line)


@app.command("desi")
def desi_cmd(
    params_path: ParamsOpt = None,
    observed: Annotated[
        Path, typer.Option(help="Observed star-forming spectra (with noise-free truth) from `data observe`.")
    ] = Path("data/interim/sf_observed.npz"),
    noise_shape: Annotated[Path, typer.Option(help="Noise shape from `mzr desi-noise`.")] = Path(
        "data/external/desi/noise_shape.npz"
    ),
    out: Annotated[Path, typer.Option(help="DESI-like spectra in the layout of `data noise` (.npz).")] = Path(
        "data/processed/desi_noisy.npz"
    ),
) -> None:
    """Move every galaxy to z = mzr.desi.z (dimming + redshift) and add DESI-like noise."""
    t0 = time.perf_counter()
    p = resolve_params(params_path)
    line = desi.run(p.mzr.desi, p.preprocess, observed, noise_shape, out)
    done("mzr desi", t0)
    typer.echo(line)


@app.command("evaluate")
def evaluate_cmd(
    params_path: ParamsOpt = None,
    spectra: Annotated[Path, typer.Option(help="Preprocessed original star-forming spectra.")] = Path(
        "data/processed/sf_spectra.npz"
    ),
    desi_path: Annotated[Path, typer.Option("--desi", help="DESI-like spectra from `mzr desi`.")] = Path(
        "data/processed/desi_noisy.npz"
    ),
    sample: Annotated[Path, typer.Option(help="Star-forming sample from `mzr select`.")] = Path(
        "data/interim/sf_sample.parquet"
    ),
    templates: TemplatesOpt = TEMPLATES,
    model: Annotated[
        str | None, typer.Option(help="Model URI (default models:/<mzr.registered_model>@champion).")
    ] = None,
    posterior_model: Annotated[
        str | None,
        typer.Option(
            help="Noise-aware model for the MZR from posterior draws (default: models:/<tracking.default_model>"
            "@champion when train.extra has a noise-aware family; mzr.posterior_draws 0: none)."
        ),
    ] = None,
    out: Annotated[Path, typer.Option(help="Metrics (JSON).")] = Path("reports/mzr.json"),
    out_md: Annotated[Path, typer.Option(help="Table (Markdown).")] = Path("reports/mzr.md"),
    figure: Annotated[Path, typer.Option(help="Figure 10 (PNG).")] = Path("reports/figures/mzr/fig10_mzr.png"),
    tracking: Annotated[
        bool, typer.Option("--tracking/--no-tracking", help="Promote the champion and log the metrics to MLflow.")
    ] = True,
    desi_model: Annotated[
        Path,
        typer.Option(
            help="The DESI VAE trained by `train_desi`: the champion is promoted among its run's versions "
            "(all versions when it has no metrics.json)."
        ),
    ] = Path("models_desi/vae"),
) -> None:
    """Metallicities from original, DESI-like and de-noised spectra; scatter, SFR trend, Fig. 10."""
    t0 = time.perf_counter()
    line = mzr.run(
        resolve_params(params_path),
        spectra,
        desi_path,
        sample,
        templates,
        out,
        out_md,
        figure,
        model=model,
        tracking=tracking,
        posterior_model=posterior_model,
        desi_model=desi_model,
    )
    done("mzr evaluate", t0)
    typer.echo(line)
