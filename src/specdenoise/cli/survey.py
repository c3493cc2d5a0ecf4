"""Survey-data commands: download SDSS spectra and MPA-JHU catalogues, read survey FITS files,
and the ``data.source: sdss`` versions of the ``data universe`` / ``data observe`` stages.

Registered on the ``specdenoise`` app by :func:`register` (see ``_EXTENSIONS`` in
:mod:`specdenoise.cli`).
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Annotated

import typer

log = logging.getLogger("specdenoise")


def _params(path: Path):
    from specdenoise.config import load_params

    return load_params(path)


def _report(summary, report: Path | None) -> None:
    from specdenoise.io import save_json

    for r in summary.results:
        if r.status not in ("ok", "skipped"):
            typer.echo(f"{r.status}: {r.url} ({r.error})")
    if report is not None:
        save_json(report, summary.to_dict())
    typer.echo(f"download: {summary.line()}")
    if not summary.ok:
        raise typer.Exit(1)


def sdss_universe(p, out: Path) -> None:
    """``data universe`` with ``data.source: sdss``: the MPA-JHU parent catalogue to ``out``."""
    from specdenoise.io import save_table_chunks
    from specdenoise.sources.sdss import build_catalogue, provenance

    t0 = time.perf_counter()
    cat = build_catalogue(p.data)
    total = save_table_chunks(out, [cat], metadata=provenance(p.data))["rows"]
    mix = {str(k): round(v / total, 4) for k, v in cat["class"].value_counts().items()}
    log.info("universe (sdss) done in %.1f s (n=%d)", time.perf_counter() - t0, total)
    typer.echo(f"universe: {total} MPA-JHU galaxies (source sdss, Balmer absorption from {cat.attrs.get('lick_source', '?')}) -> {out}; class mix {mix}")


def sdss_observe(p, sample: Path, out: Path) -> None:
    """``data observe`` with ``data.source: sdss``: the selected galaxies' spec-lite files to ``out``."""
    import numpy as np

    from specdenoise.io import load_table, save_npz
    from specdenoise.sources.sdss import observe_sdss

    t0 = time.perf_counter()
    cat = load_table(sample, required=("id", "z", "plate", "mjd", "fiber"))
    obs = observe_sdss(cat, p.data)
    split = np.asarray(cat["split"].astype(str).tolist() if "split" in cat.columns else ["train"] * len(cat), dtype="U8")
    save_npz(out, **obs, split=split)
    rate = len(cat) / max(time.perf_counter() - t0, 1e-9)
    masked = float((obs["ivar"] == 0).mean())
    typer.echo(f"observe: {len(cat)} SDSS spectra read from {p.data.sdss_dir} onto {obs['flux'].shape[1]} pixels ({rate:.0f} spectra/s, {100 * masked:.1f}% pixels masked) -> {out}")


def register(app: typer.Typer, data_app: typer.Typer) -> None:
    """Add ``data download-sdss``, ``data download-mpajhu`` and ``data read``."""

    @data_app.command("download-sdss")
    def download_sdss_cmd(
        targets: Annotated[Path, typer.Option(help="CSV or Parquet with plate, mjd, fiber (e.g. data/interim/sample.parquet); optional size, sha256, md5.")],
        out: Annotated[Path | None, typer.Option(help="Folder for the spec-lite files (default: data.sdss_dir).")] = None,
        params: Annotated[Path, typer.Option("--params", "-p", help="Parameters file (data.download).")] = Path("params.yaml"),
        base_url: Annotated[str | None, typer.Option(help="Override data.download.sdss_base_url.")] = None,
        workers: Annotated[int | None, typer.Option(help="Override data.download.workers (parallel downloads).")] = None,
        retries: Annotated[int | None, typer.Option(help="Override data.download.retries.")] = None,
        report: Annotated[Path | None, typer.Option(help="Write the per-file outcome (JSON) here.")] = None,
    ) -> None:
        """Download SDSS spec-lite spectra by plate-mjd-fiber (resumable, checked, parallel)."""
        from specdenoise.survey.download import download_many, read_targets, sdss_targets

        d = _params(params).data
        dl = d.download
        table = read_targets(targets)
        tg = sdss_targets(table, out or Path(d.sdss_dir), base_url=base_url or dl.sdss_base_url)
        log.info("download-sdss: %d file(s) -> %s", len(tg), out or d.sdss_dir)
        summary = download_many(tg, workers=workers or dl.workers, retries=dl.retries if retries is None else retries, backoff_s=dl.backoff_s, timeout=dl.timeout_s)
        _report(summary, report)

    @data_app.command("download-mpajhu")
    def download_mpajhu_cmd(
        out: Annotated[Path | None, typer.Option(help="Folder for the catalogues (default: data.mpajhu_dir).")] = None,
        params: Annotated[Path, typer.Option("--params", "-p", help="Parameters file (data.download).")] = Path("params.yaml"),
        base_url: Annotated[str | None, typer.Option(help="Override data.download.mpajhu_base_url.")] = None,
        indx: Annotated[bool, typer.Option("--indx/--no-indx", help="Also fetch gal_indx (Lick indices for the absorption class).")] = True,
    ) -> None:
        """Download the MPA-JHU DR7 catalogues (gal_info, gal_line, totlgm, gal_totsfr, gal_indx)."""
        from specdenoise.survey.download import MPAJHU_FILES, download_many, mpajhu_targets

        d = _params(params).data
        dl = d.download
        files = [f for f in MPAJHU_FILES if indx or not f.startswith("gal_indx")]
        tg = mpajhu_targets(out or Path(d.mpajhu_dir), base_url=base_url or dl.mpajhu_base_url, files=files)
        summary = download_many(tg, workers=min(dl.workers, len(tg)), retries=dl.retries, backoff_s=dl.backoff_s, timeout=dl.timeout_s)
        _report(summary, None)

    @data_app.command("read")
    def read_cmd(
        files: Annotated[list[Path], typer.Argument(help="SDSS spec/spec-lite, DR7 spSpec or DESI coadd FITS files.")],
    ) -> None:
        """Read survey spectra and print one line per spectrum (id, format, z, coverage, masking, S/N)."""
        import numpy as np

        from specdenoise.survey.readers import read_spectra

        for f in files:
            for s in read_spectra(f):
                good = s.ivar > 0
                snr = float(np.median(np.abs(s.flux[good]) * np.sqrt(s.ivar[good]))) if good.any() else 0.0
                typer.echo(
                    f"{s.id}\t{s.meta.get('format', '?')}\tz={s.z:.5f}\t{s.wave[0]:.1f}-{s.wave[-1]:.1f} A (air)\t"
                    f"{len(s.wave)} px\t{100 * (1 - good.mean()):.1f}% masked\tmedian S/N {snr:.1f}\t{f}"
                )
