"""``specdenoise data download-sdss / download-mpajhu / read``: real survey data."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import numpy as np
import typer

from specdenoise.cli.common import ParamsOpt, log
from specdenoise.config import resolve_params
from specdenoise.errors import EXIT_PARTIAL, DataError
from specdenoise.io import save_json
from specdenoise.survey.download import MPAJHU_FILES, download_many, mpajhu_targets, read_targets, sdss_targets
from specdenoise.survey.readers import read_spectra


def _report(summary, report: Path | None) -> None:
    for r in summary.results:
        if r.status not in ("ok", "skipped"):
            typer.echo(f"{r.status}: {r.url} ({r.error})")
    if report is not None:
        save_json(report, summary.to_dict())
    typer.echo(f"download: {summary.line()}")
    if not summary.ok:
        raise typer.Exit(1)


def download_sdss_cmd(
    targets: Annotated[
        Path,
        typer.Option(
            help="CSV or Parquet with plate, mjd, fiber (e.g. data/interim/sample.parquet); optional size, sha256, md5."
        ),
    ],
    out: Annotated[Path | None, typer.Option(help="Folder for the spec-lite files (default: data.sdss_dir).")] = None,
    params_path: ParamsOpt = None,
    base_url: Annotated[str | None, typer.Option(help="Override data.download.sdss_base_url.")] = None,
    workers: Annotated[int | None, typer.Option(help="Override data.download.workers (parallel downloads).")] = None,
    retries: Annotated[int | None, typer.Option(help="Override data.download.retries.")] = None,
    report: Annotated[Path | None, typer.Option(help="Write the per-file outcome (JSON) here.")] = None,
) -> None:
    """Download SDSS spec-lite spectra by plate-mjd-fiber (resumable, checked, parallel)."""
    d = resolve_params(params_path).data
    dl = d.download
    table = read_targets(targets)
    tg = sdss_targets(table, out or Path(d.sdss_dir), base_url=base_url or dl.sdss_base_url)
    log.info("download-sdss: %d file(s) -> %s", len(tg), out or d.sdss_dir)
    summary = download_many(
        tg,
        workers=workers or dl.workers,
        retries=dl.retries if retries is None else retries,
        backoff_s=dl.backoff_s,
        timeout=dl.timeout_s,
    )
    _report(summary, report)


def download_mpajhu_cmd(
    out: Annotated[Path | None, typer.Option(help="Folder for the catalogues (default: data.mpajhu_dir).")] = None,
    params_path: ParamsOpt = None,
    base_url: Annotated[str | None, typer.Option(help="Override data.download.mpajhu_base_url.")] = None,
    indx: Annotated[
        bool, typer.Option("--indx/--no-indx", help="Also fetch gal_indx (Lick indices for the absorption class).")
    ] = True,
) -> None:
    """Download the MPA-JHU DR7 catalogues (gal_info, gal_line, totlgm, gal_totsfr, gal_indx)."""
    d = resolve_params(params_path).data
    dl = d.download
    files = [f for f in MPAJHU_FILES if indx or not f.startswith("gal_indx")]
    tg = mpajhu_targets(out or Path(d.mpajhu_dir), base_url=base_url or dl.mpajhu_base_url, files=files)
    summary = download_many(
        tg, workers=min(dl.workers, len(tg)), retries=dl.retries, backoff_s=dl.backoff_s, timeout=dl.timeout_s
    )
    _report(summary, None)


def read_cmd(
    files: Annotated[list[Path], typer.Argument(help="SDSS spec/spec-lite, DR7 spSpec or DESI coadd FITS files.")],
) -> None:
    """Read survey spectra and print one line per spectrum (id, format, z, coverage, masking, S/N).

    Exit status 3 when the one file given is unreadable; with several files the readable ones
    are printed, each unreadable one is named on stderr and the exit status is 1.
    """
    failed = []
    for f in files:
        try:
            spectra = read_spectra(f)
        except DataError as exc:
            if len(files) == 1:
                raise
            log.warning("skipped: %s", exc)
            failed.append(f)
            continue
        for s in spectra:
            good = s.ivar > 0
            snr = float(np.median(np.abs(s.flux[good]) * np.sqrt(s.ivar[good]))) if good.any() else 0.0
            typer.echo(
                f"{s.id}\t{s.meta.get('format', '?')}\tz={s.z:.5f}\t{s.wave[0]:.1f}-{s.wave[-1]:.1f} A (air)\t"
                f"{len(s.wave)} px\t{100 * (1 - good.mean()):.1f}% masked\tmedian S/N {snr:.1f}\t{f}"
            )
    if failed:
        log.warning("data read: %d of %d file(s) unreadable", len(failed), len(files))
        raise typer.Exit(EXIT_PARTIAL)
