"""``specdenoise train``: one model family at one latent dimension (DVC stage ``train``)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer

from specdenoise.cli.common import NOISY, SPECTRA, NoisyOpt, ParamsOpt, SpectraOpt, done, progress
from specdenoise.config import resolve_params
from specdenoise.data.artefacts import NOISY_LEVELS_DIR
from specdenoise.errors import DataError
from specdenoise.evaluation.draw_coverage import line_measure
from specdenoise.models import store
from specdenoise.training import train

#: ``--templates``: a ``calibrated_intervals`` family (posterior) fits its line-interval factors with them
IntervalTemplatesOpt = Annotated[
    Path | None,
    typer.Option(
        "--templates",
        help="E-MILES templates (`specdenoise templates`): a family with calibrated line intervals (posterior) "
        "fits them with the fast line fitter; without: its intervals are the draws' own.",
    ),
]


def _measure(templates: Path | None, p):
    if templates is None:
        return None
    if not templates.is_file():
        raise DataError(f"--templates: {templates} does not exist (run `specdenoise templates --out {templates}`)")
    return line_measure(p, templates)


def train_cmd(
    model: Annotated[
        str, typer.Option("--model", "-m", help="Model family (a registered family: pca, wiener, ae, vae, ...).")
    ],
    latent_dim: Annotated[int, typer.Option("--latent-dim", "-d", help="Latent dimension (rank for pca/wiener).")],
    params_path: ParamsOpt = None,
    spectra: SpectraOpt = SPECTRA,
    noisy: NoisyOpt = NOISY,
    out: Annotated[Path | None, typer.Option(help="Output folder (default models/<family>_<dim>).")] = None,
    tracking: Annotated[bool, typer.Option("--tracking/--no-tracking", help="Log the run to MLflow.")] = True,
    registered_model: Annotated[
        str | None, typer.Option(help="Register under this name (default tracking.registered_model).")
    ] = None,
    sample_tag: Annotated[
        str, typer.Option("--sample", help="Value of the run's 'sample' tag (e.g. main, desi).")
    ] = "main",
    hyper_from: Annotated[
        Path | None, typer.Option(help="record.json of a trained model: re-train its architecture, no search.")
    ] = None,
    templates: IntervalTemplatesOpt = None,
) -> None:
    """Search hyper-parameters (searchable families), train, score on the test set and log to MLflow."""
    t0 = time.perf_counter()
    p = resolve_params(params_path)
    if registered_model:
        p = p.model_copy(update={"tracking": p.tracking.model_copy(update={"registered_model": registered_model})})
    rec, final = train.run(
        model,
        latent_dim,
        p,
        spectra,
        noisy,
        out,
        tracking=tracking,
        sample=sample_tag,
        progress=progress(),
        hyper_from=hyper_from,
        measure=_measure(templates, p),
    )
    m = rec["metrics"]
    done("train", t0, model=f"{model}-{latent_dim}d")
    typer.echo(
        f"train {model} {latent_dim}-D: test loss {m['test_loss']:.1f} (truth {m['test_loss_truth']:.1f}), "
        f"gain {m['gain']:.1f}, {m.get('epochs', 0)} epochs, {m['train_seconds']:.1f} s -> {final}"
    )


def train_axis_cmd(
    model: Annotated[str, typer.Option("--model", "-m", help="Model family (a registered family).")],
    latent_dim: Annotated[int, typer.Option("--latent-dim", "-d", help="Latent dimension (one of train.axis_dims).")],
    hyper_from: Annotated[Path, typer.Option(help="record.json of the paper model whose architecture is re-trained.")],
    params_path: ParamsOpt = None,
    spectra: SpectraOpt = SPECTRA,
    noisy: NoisyOpt = NOISY,
    levels_dir: Annotated[Path, typer.Option(help="Folder of the other noise levels (sigma_<level>.npz).")] = (
        NOISY_LEVELS_DIR
    ),
    out: Annotated[Path | None, typer.Option(help="Output folder (default models/<family>_<dim>_axis).")] = None,
    tracking: Annotated[bool, typer.Option("--tracking/--no-tracking", help="Log the runs to MLflow.")] = True,
    templates: IntervalTemplatesOpt = None,
) -> None:
    """Train the other seeds (train.seeds) and noise levels (noise.levels) of one family and dimension."""
    t0 = time.perf_counter()
    p = resolve_params(params_path)
    final = out or store.axis_dir(Path("models"), model, latent_dim)
    recs = train.run_axis(
        model,
        latent_dim,
        p,
        spectra,
        noisy,
        levels_dir,
        final,
        hyper_from,
        tracking=tracking,
        progress=progress(),
        measure=_measure(templates, p),
    )
    done("train-axis", t0, model=f"{model}-{latent_dim}d", models=len(recs))
    for r in recs:
        typer.echo(
            f"train {model} {latent_dim}-D sigma={r['noise_level']:g} seed {r['seed_index']}: "
            f"test loss {r['metrics']['test_loss']:.1f}, {r['metrics']['train_seconds']:.1f} s"
        )
