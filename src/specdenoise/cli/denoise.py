"""``specdenoise denoise``: a trained model applied to survey FITS files (:mod:`specdenoise.survey.batch`)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from specdenoise.cli.common import ParamsOpt, log, progress
from specdenoise.config import resolve_params
from specdenoise.survey.target_options import TARGET_OPTIONS

DEFAULT_MODEL = "models:/specdenoise-posterior@champion"

SecurityFileOpt = Annotated[
    Path | None,
    typer.Option(
        "--security-file",
        help="YAML with tls_ca_file, tls_client_cert, tls_client_key for a tls:// --scheduler "
        "(default: dask's distributed.comm.tls config).",
    ),
]
MaxMaskedOpt = Annotated[
    float,
    typer.Option("--max-masked", help="Flag (UNCOVERED), skip targets whose rest-frame grid is uncovered beyond this."),
]
ZMaxOpt = Annotated[float, typer.Option("--z-max", help="Flag (Z_RANGE), skip targets at or above this z (<= 1).")]
OodChi2Opt = Annotated[
    float,
    typer.Option("--ood-chi2", help="Flag (OUT_OF_DOMAIN) targets whose output misses the input beyond this chi2."),
]
RedshiftsOpt = Annotated[
    Path | None, typer.Option("--redshifts", help="Redshift catalogue (CSV or FITS) overriding the files' redshifts.")
]
IdColumnOpt = Annotated[str, typer.Option("--id-column", help="Catalogue column of ids (TARGETID or sdss-P-M-F).")]
ZColumnOpt = Annotated[str, typer.Option("--z-column", help="Catalogue column of redshifts.")]
TypeColumnOpt = Annotated[str, typer.Option("--type-column", help="Catalogue column of spectral types (optional).")]
PerSpectrumOpt = Annotated[
    bool, typer.Option("--per-spectrum", help="Also write one file per spectrum (same data model, one row).")
]


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
        Path, typer.Option("--out", "-o", help="Output folder (<stem>.denoised.fits per input, summary.json).")
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
    security_file: SecurityFileOpt = None,
    workers: Annotated[int, typer.Option("--workers", "-w", help="Local Dask workers (0 = this process).")] = 2,
    batch_size: Annotated[int, typer.Option("--batch-size", help="Files per Dask task.")] = 8,
    max_masked: MaxMaskedOpt = TARGET_OPTIONS["max_masked"],
    z_max: ZMaxOpt = TARGET_OPTIONS["z_max"],
    ood_chi2: OodChi2Opt = TARGET_OPTIONS["ood_chi2"],
    redshifts: RedshiftsOpt = None,
    id_column: IdColumnOpt = TARGET_OPTIONS["id_column"],
    z_column: ZColumnOpt = TARGET_OPTIONS["z_column"],
    type_column: TypeColumnOpt = TARGET_OPTIONS["type_column"],
    per_spectrum: PerSpectrumOpt = TARGET_OPTIONS["per_spectrum"],
    calibration: Annotated[
        Path | None, typer.Option("--calibration", help="Calibration file (default: the model's own).")
    ] = None,
    params_path: ParamsOpt = None,
) -> None:
    """De-noise survey files with a trained model: one FITS per input (de-noised flux, uncertainty, input, ivar,
    mask; one table row per target with a quality bitmask) and provenance.

    A bad target (no redshift, z out of range, not a galaxy, uncovered, bad pixels) is a flagged
    row, not a failed file. Exit status 0 when every input was written (or was already done), 1
    when some input files could not be read (listed in the summary; the others are complete), 2 on
    a usage error (bad option, an unusable --out, the folder locked by another run), 3 on a data
    error (a missing or corrupt model, a bad --redshifts catalogue, summary.json is a folder).
    """
    from specdenoise.survey.batch import run_batch  # here, not at the top: see specdenoise/cli/bench.py

    summary = run_batch(
        list(inputs),
        out,
        model,
        resolve_params(params_path),
        calibration,
        add_noise,
        seed,
        workers,
        scheduler,
        batch_size,
        progress=progress(),
        max_masked=max_masked,
        z_max=z_max,
        ood_chi2=ood_chi2,
        redshifts=str(redshifts) if redshifts else None,
        id_column=id_column,
        z_column=z_column,
        type_column=type_column,
        per_spectrum=per_spectrum,
        security_file=security_file,
    )
    _report(summary, out)


def _report(summary: dict, out: Path) -> None:
    """The summary on stdout (JSON), one line on stderr, each unreadable file named; exit 1 if any."""
    typer.echo(json.dumps({k: v for k, v in summary.items() if k != "files"}, indent=2, default=str))
    log.info(
        "denoise: %d file(s) ok, %d skipped (done before), %d bad; %d of %d spectra de-noised, flagged %s; "
        "%.1f spectra/s -> %s",
        summary["n_ok"],
        summary["n_skipped"],
        summary["n_bad"],
        summary["n_denoised"],
        summary["n_spectra"],
        summary["flags"] or "none",
        summary["spectra_per_s"],
        out,
    )
    for b in summary["bad"]:
        log.warning("skipped: %s", b["error"])
    if summary["n_bad"]:
        raise typer.Exit(1)
