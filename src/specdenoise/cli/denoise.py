"""``specdenoise denoise``: a trained model applied to survey FITS files (:mod:`specdenoise.survey.batch`)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from specdenoise.cli.common import ParamsOpt, log
from specdenoise.config import resolve_params
from specdenoise.survey.batch import run_batch

DEFAULT_MODEL = "models:/specdenoise-vae@champion"


def denoise_cmd(
    inputs: Annotated[
        list[Path], typer.Argument(help="Survey FITS files (SDSS spec/spec-lite, DR7 spSpec, DESI coadd).")
    ],
    model: Annotated[
        str,
        typer.Option(
            "--model", "-m", help="models:/NAME@ALIAS, models:/NAME/VERSION, runs:/ID or a saved model directory."
        ),
    ] = DEFAULT_MODEL,
    out: Annotated[
        Path, typer.Option("--out", "-o", help="Output folder (one FITS per spectrum, summary.json).")
    ] = Path("denoised"),
    add_noise: Annotated[
        float | None,
        typer.Option(
            "--add-noise",
            help="Add Gaussian noise of this sigma (normalised units; paper: 0.04) first; also writes FLUX_CLEAN.",
        ),
    ] = None,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the added noise (per spectrum: seed + id).")] = 0,
    scheduler: Annotated[
        str | None, typer.Option("--scheduler", help="Existing Dask scheduler, tls://HOST:PORT (or tcp://).")
    ] = None,
    security_file: Annotated[
        Path | None,
        typer.Option(
            "--security-file",
            help="YAML with tls_ca_file, tls_client_cert, tls_client_key for a tls:// --scheduler "
            "(default: dask's distributed.comm.tls config).",
        ),
    ] = None,
    workers: Annotated[int, typer.Option("--workers", "-w", help="Local Dask workers (0 = this process).")] = 2,
    batch_size: Annotated[int, typer.Option("--batch-size", help="Files per Dask task.")] = 8,
    max_masked: Annotated[
        float,
        typer.Option("--max-masked", help="Skip spectra whose rest-frame grid is uncovered beyond this fraction."),
    ] = 0.5,
    calibration: Annotated[
        Path | None, typer.Option("--calibration", help="Calibration file (default: the model's own).")
    ] = None,
    params_path: ParamsOpt = None,
) -> None:
    """De-noise survey spectra with a trained model: FITS per spectrum with uncertainty, mask and provenance.

    Exit status 0 when every input succeeded (or was already done), 1 when some inputs were
    bad (listed in the summary; the others are complete), 2 on a usage error (bad --model, an
    unusable --out, the folder locked by another run), 3 on a data error (e.g. summary.json is
    a folder). The local Dask cluster is TLS-secured; see :mod:`specdenoise.survey.cluster`.
    """
    p = resolve_params(params_path)
    summary = run_batch(
        list(inputs),
        out,
        model,
        p,
        calibration,
        add_noise,
        seed,
        workers,
        scheduler,
        batch_size,
        max_masked,
        security_file=security_file,
    )
    typer.echo(json.dumps({k: v for k, v in summary.items() if k != "files"}, indent=2, default=str))
    log.info(
        "denoise: %d ok, %d skipped (done before), %d bad; %.1f spectra/s -> %s",
        summary["n_ok"],
        summary["n_skipped"],
        summary["n_bad"],
        summary["spectra_per_s"],
        out,
    )
    for b in summary["bad"]:
        log.warning("skipped: %s", b["error"])
    if summary["n_bad"]:
        raise typer.Exit(1)
