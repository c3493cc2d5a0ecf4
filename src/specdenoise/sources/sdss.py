"""``data.source: sdss``: the real SDSS sample in place of the embedded universe.

* :func:`build_catalogue` (the ``data universe`` stage): the MPA-JHU DR7 catalogues read by
  :func:`~specdenoise.survey.readers.mpajhu.read_mpajhu`, cut to the parent pool (good redshift in
  ``data.z_min``-``data.z_max``, spectroscopic galaxies, main-sample targets) and, with
  ``data.require_spectra``, to the galaxies whose spec-lite file is in ``data.sdss_dir``.
  Its columns are the universe's (``id``, ``z``, ``class``, ``log_mass``, ``log_sfr``,
  ``Halpha_flux_meas``, ...), so ``data select`` runs unchanged.
* :func:`observe_sdss` (the ``data observe`` stage): each selected galaxy's spec-lite file
  read with :func:`~specdenoise.survey.readers.read_spectra` and resampled (flux-conserving, masks
  propagated) onto the universe's observed-frame grid :func:`specdenoise.sources.observe.sdss_loglam`
  (air wavelengths). Real data have no noise-free truth: ``truth`` is the observed flux, which
  is the paper's protocol (models are scored against the observed SDSS spectrum).
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import numpy as np

from specdenoise.config import DataConfig
from specdenoise.data.artefacts import SDSS_OBSERVE_COLUMNS, Observed, load_sample
from specdenoise.data.preprocess import edges_from_centres_log, resample
from specdenoise.errors import DataError
from specdenoise.io import save_table_chunks
from specdenoise.sources.observe import sdss_loglam, split_column
from specdenoise.survey.download import spec_filename
from specdenoise.survey.readers import read_spectra
from specdenoise.survey.readers.mpajhu import parent_sample, read_mpajhu

log = logging.getLogger(__name__)


def spec_path(cfg: DataConfig, plate: int, mjd: int, fiber: int) -> Path:
    """Path of one spec-lite file inside ``cfg.sdss_dir``."""
    return Path(cfg.sdss_dir) / spec_filename(plate, mjd, fiber)


def build_catalogue(cfg: DataConfig) -> Any:
    """The parent catalogue from the MPA-JHU files in ``cfg.mpajhu_dir`` (a pandas DataFrame).

    Raises
    ------
    DataError
        Missing or unreadable catalogue files, or no galaxy left after the cuts.
    """
    cat = read_mpajhu(cfg.mpajhu_dir)
    n_all = len(cat)
    pool = parent_sample(cat, cfg.z_min, cfg.z_max, cfg.main_sample_only)
    if cfg.require_spectra:
        have = np.array(
            [
                spec_path(cfg, p, m, f).exists()
                for p, m, f in zip(pool["plate"], pool["mjd"], pool["fiber"], strict=True)
            ],
            dtype=bool,
        )
        pool = pool[have].reset_index(drop=True)
    log.info(
        "MPA-JHU: %d of %d rows in the parent pool (z %.3f-%.3f%s)",
        len(pool),
        n_all,
        cfg.z_min,
        cfg.z_max,
        ", with spectra" if cfg.require_spectra else "",
    )
    if len(pool) == 0:
        raise DataError(
            f"{cfg.mpajhu_dir}: no galaxy left after the cuts (z {cfg.z_min}-{cfg.z_max}, z_warning 0, GALAXY"
            f"{', main sample' if cfg.main_sample_only else ''}"
            f"{', spectrum in ' + cfg.sdss_dir if cfg.require_spectra else ''})"
        )
    return pool


def provenance(cfg: DataConfig) -> dict[str, str]:
    """Parquet metadata recording where the catalogue came from."""
    return {
        "specdenoise.source": "sdss",
        "specdenoise.mpajhu_dir": str(cfg.mpajhu_dir),
        "specdenoise.z_range": f"{cfg.z_min}-{cfg.z_max}",
    }


def to_grid(spec: Any, loglam: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Resample one :class:`~specdenoise.survey.readers.Spectrum` onto a log10-lambda grid.

    Parameters
    ----------
    spec : Spectrum
        Observed-frame air wavelengths (n,) in A, flux and ivar (n,).
    loglam : ndarray, shape (k,)
        Target grid, log10(air wavelength / A).

    Returns
    -------
    flux, ivar : ndarray, shape (k,)
        Flux-conserving resampled flux (1e-17 erg/s/cm^2/A) and propagated ivar; ivar = 0
        where less than half a pixel is covered by good data (and flux 0 outside the data).
    """
    old_edges = edges_from_centres_log(np.log10(spec.wave))
    new_edges = edges_from_centres_log(loglam)
    f, iv, cov = resample(new_edges, old_edges, spec.flux[None, :], spec.ivar[None, :])
    iv = np.where(cov[0] >= 0.5, iv[0], 0.0)
    return f[0], iv


def observe_sdss(cat: Any, cfg: DataConfig) -> dict[str, np.ndarray]:
    """Observed spectra of the catalogue rows from their spec-lite files.

    Parameters
    ----------
    cat : pandas.DataFrame
        Rows with ``id``, ``plate``, ``mjd``, ``fiber``, ``z`` (from :func:`build_catalogue`
        and ``data select``).
    cfg : DataConfig

    Returns
    -------
    dict
        The layout :func:`specdenoise.sources.observe.observe` returns: ``loglam`` (k,), ``flux``,
        ``ivar``, ``truth`` (n, k) float32 (``truth`` = ``flux``), ``id`` (n,) str, ``z`` (n,)
        (the catalogue redshift).

    Raises
    ------
    DataError
        A missing spectrum file (all missing are counted, the first named, and the download
        command given) or an unreadable one (named).
    """
    for col in ("id", "plate", "mjd", "fiber", "z"):
        if col not in cat.columns:
            raise DataError(
                f"sample: missing column '{col}' (data.source sdss needs an MPA-JHU catalogue; "
                "rerun `specdenoise data universe`)"
            )
    paths = [spec_path(cfg, p, m, f) for p, m, f in zip(cat["plate"], cat["mjd"], cat["fiber"], strict=True)]
    missing = [p for p in paths if not p.exists()]
    if missing:
        raise DataError(
            f"{cfg.sdss_dir}: {len(missing)} of {len(paths)} spectra missing (first {missing[0].name}); "
            "fetch them with `specdenoise data download-sdss --targets data/interim/sample.parquet "
            f"--out {cfg.sdss_dir}`"
        )
    loglam = sdss_loglam()
    n, k = len(cat), len(loglam)
    flux = np.zeros((n, k), dtype=np.float32)
    ivar = np.zeros((n, k), dtype=np.float32)
    for i, path in enumerate(paths):
        specs = read_spectra(path)
        if len(specs) != 1:
            raise DataError(f"{path}: {len(specs)} spectra in a spec-lite file (expected 1)")
        flux[i], ivar[i] = to_grid(specs[0], loglam)
        if not (ivar[i] > 0).any():
            raise DataError(f"{path}: no good pixel on the 3800-9200 A grid")
    return {
        "loglam": loglam,
        "flux": flux,
        "ivar": ivar,
        "truth": flux.copy(),
        "id": np.asarray(cat["id"].astype(str).tolist()),
        "z": cat["z"].to_numpy(dtype=float),
    }


def run_universe(params: Any, out: Path, n: int | None = None) -> str:
    """``data universe`` with ``data.source: sdss``: the MPA-JHU parent catalogue to ``out`` (``n`` is ignored)."""
    cat = build_catalogue(params.data)
    total = save_table_chunks(out, [cat], metadata=provenance(params.data))["rows"]
    mix = {str(k): round(v / total, 4) for k, v in cat["class"].value_counts().items()}
    return (
        f"universe: {total} MPA-JHU galaxies (source sdss, Balmer absorption from {cat.attrs.get('lick_source', '?')}) "
        f"-> {out}; class mix {mix}"
    )


def run_observe(params: Any, sample: Path, out: Path, progress: bool = False) -> str:
    """``data observe`` with ``data.source: sdss``: the selected galaxies' spec-lite files to ``out``."""
    t0 = time.perf_counter()
    cat = load_sample(sample, SDSS_OBSERVE_COLUMNS)
    obs = observe_sdss(cat, params.data)
    Observed.from_arrays({**obs, "split": split_column(cat)}).save(out)
    rate = len(cat) / max(time.perf_counter() - t0, 1e-9)
    masked = float((obs["ivar"] == 0).mean())
    return (
        f"observe: {len(cat)} SDSS spectra read from {params.data.sdss_dir} onto {obs['flux'].shape[1]} pixels "
        f"({rate:.0f} spectra/s, {100 * masked:.1f}% pixels masked) -> {out}"
    )
