"""The worker side of ``specdenoise denoise``: one Dask task (or the in-process run) reads, flags,
de-noises and writes a list of input files (:func:`process_batch`).

Everything here runs in the worker process: the de-noiser and the ``--redshifts`` catalogue are
loaded once per process and cached.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np

from specdenoise.config import parse_params
from specdenoise.errors import SpecdenoiseError
from specdenoise.survey.denoiser import Denoiser
from specdenoise.survey.fits_out import DenoisedFile, provenance_cards, write_denoised
from specdenoise.survey.quality import SKIP_BITS, Quality
from specdenoise.survey.readers import read_block
from specdenoise.survey.resume import file_stem, input_record, write_done
from specdenoise.survey.targets import RedshiftCatalog, apply_catalog, assemble, load_catalog, prepare_block

_DENOISERS: dict[str, Any] = {}  # per-process cache of loaded de-noisers (filled lazily)
_CATALOGS: dict[str, RedshiftCatalog] = {}  # per-process cache of --redshifts catalogues
#: Name of the output of ``<stem>.fits``: ``<stem>.denoised.fits``.
OUTPUT_SUFFIX = ".denoised.fits"
#: Targets pending before a model call (small files are de-noised together).
MIN_MODEL_BATCH = 256
_KEYS = ("flux", "ivar", "norm", "coverage", "z", "mask", "id")


def _safe(text: str) -> str:
    return "".join(c if c.isalnum() or c in "-_+." else "_" for c in text)


def get_denoiser(model: str, params: dict[str, Any], calibration: str | None, root: str) -> Any:
    key = json.dumps([model, params, calibration, root], sort_keys=True, default=str)
    if key not in _DENOISERS:
        _DENOISERS[key] = Denoiser.load(model, parse_params(params), calibration, Path(root))
    return _DENOISERS[key]


def warm(model: str, params: dict[str, Any], calibration: str | None, root: str) -> int:
    """Load the de-noiser in this process (a Dask worker) ahead of timing and run it once on a flat
    spectrum, so that what a model builds lazily (the posterior family's arranged prior) is built
    too; returns its pixel count."""
    den = get_denoiser(model, params, calibration, root)
    n_pix = int(den.preprocess_cfg.n_pix)
    flat = np.full((1, n_pix), 1.0 / np.sqrt(n_pix), dtype=np.float32)
    den.predict(flat, np.full((1, n_pix), 1e4, dtype=np.float32), np.zeros(1))
    return n_pix


def get_catalog(options: dict[str, Any]) -> RedshiftCatalog | None:
    """The ``--redshifts`` catalogue of ``options`` (loaded once per process), or None."""
    if not options.get("redshifts"):
        return None
    key = json.dumps([options["redshifts"], options["id_column"], options["z_column"], options["type_column"]])
    if key not in _CATALOGS:
        _CATALOGS[key] = load_catalog(
            options["redshifts"], options["id_column"], options["z_column"], options["type_column"]
        )
    return _CATALOGS[key]


def _first_line(exc: Exception) -> str:
    return f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"


def _read(den: Denoiser, path: Path, options: dict[str, Any], rec: dict[str, Any]) -> tuple | None:
    """Read, flag and preprocess one file; None (and ``rec`` marked bad) when the file is unusable."""
    try:
        block = read_block(path)
        apply_catalog(block, get_catalog(options))
        q, pre = prepare_block(den, block, options)
    except SpecdenoiseError as exc:
        rec.update(status="bad", error=str(exc))
        return None
    except Exception as exc:  # never stop the batch on one file
        rec.update(status="bad", error=f"{path}: {_first_line(exc)}")
        return None
    block.flux = block.ivar = None  # the observed arrays are not needed any more (memory)
    rec["n_spectra"] = len(block)
    return rec, block, q, pre


def _flush(den: Denoiser, pending: list[tuple], out: Path, options: dict[str, Any]) -> None:
    """De-noise the targets of the ``pending`` files in one model call, then write each file."""
    todo = [p for p in pending if p[3] is not None]
    res = None
    if todo:
        batch = {k: np.concatenate([p[3][k] for p in todo]) for k in _KEYS}
        try:
            res = den.finish(batch, options["add_noise"], options["seed"])
        except Exception as exc:
            for rec, *_ in todo:
                rec.update(status="bad", error=f"{rec['input']}: de-noising failed ({_first_line(exc)})")
            return
    j0 = 0
    calibrated = res.calibrated if res is not None else den.calibration is not None
    for rec, block, q, pre in pending:
        rows = pre["rows"] if pre is not None else np.empty(0, dtype=int)
        try:
            header = provenance_cards(den, options, rec["input"], str(block.meta.get("format")), calibrated)
            d = assemble(block, q, rows, res, j0, den.wave, options, header)
            _write(out, d, rec, options)
        except Exception as exc:
            rec.update(status="bad", error=f"{rec['input']}: cannot write output ({_first_line(exc)})")
        j0 += len(rows)


def _write(out: Path, d: DenoisedFile, rec: dict[str, Any], options: dict[str, Any]) -> None:
    stem = file_stem(Path(rec["input"]))
    name = f"{stem}{OUTPUT_SUFFIX}"
    write_denoised(out / name, d)
    rec["outputs"].append(name)
    if options.get("per_spectrum"):
        for i, sid in enumerate(d.block.ids):
            one = f"{stem}.{_safe(sid)}.fits"
            write_denoised(out / one, d, np.array([i]))
            rec["outputs"].append(one)
    rec["n_denoised"] = int(np.sum(d.quality & int(SKIP_BITS) == 0))
    rec["flags"] = {q.name: int(np.sum(d.quality & int(q) != 0)) for q in Quality if np.any(d.quality & int(q))}


def process_batch(
    files: list[str],
    out_dir: str,
    model: str,
    params: dict[str, Any],
    calibration: str | None,
    root: str,
    options: dict[str, Any],
) -> list[dict[str, Any]]:
    """Read, flag, de-noise and write every file of ``files``; one status record per file.

    Files are read and preprocessed one by one (each as one 2-D block); their targets are
    de-noised together once at least :data:`MIN_MODEL_BATCH` are pending (few model calls for
    many small files, little memory for big ones). Never raises for a bad input: the file's
    record says ``status: "bad"`` and why; a bad target is a flagged row of its file.
    """
    den = get_denoiser(model, params, calibration, root)
    out = Path(out_dir)
    records: list[dict[str, Any]] = []
    pending: list[tuple] = []
    identities: dict[int, dict[str, Any]] = {}
    t0 = time.perf_counter()
    for i, path in enumerate(map(Path, files)):
        rec: dict[str, Any] = {"input": str(path), "status": "ok", "outputs": [], "n_spectra": 0}
        records.append(rec)
        item = None
        try:
            if path.is_file():  # hashed before reading, so a later change is seen on resume
                identities[i] = input_record(path)
        except OSError as exc:
            rec.update(status="bad", error=f"{path}: cannot read ({exc.strerror or exc})")
        else:
            item = _read(den, path, options, rec)
        if item is not None:
            pending.append(item)
        n_pending = sum(len(p[3]["rows"]) for p in pending if p[3] is not None)
        if pending and (n_pending >= MIN_MODEL_BATCH or i == len(files) - 1):
            _flush(den, pending, out, options)
            pending = []
    dt = time.perf_counter() - t0
    for i, rec in enumerate(records):
        rec["seconds"] = dt / max(len(records), 1)
        if rec["status"] == "ok" and i in identities:  # no record (redone next time) for a non-regular file
            write_done(out, identities[i], options, rec["outputs"], n_spectra=rec["n_spectra"])
    return records
