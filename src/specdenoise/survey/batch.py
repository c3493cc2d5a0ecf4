"""Batch de-noising of survey files (``specdenoise denoise``): one output FITS per input file.

Files are processed in batches on a Dask cluster: a local one (``workers`` single-threaded
processes bound to 127.0.0.1) by default, an existing one given by ``scheduler`` (its workers
need this package and access to the model), or in this process with ``workers=0``.

Robustness: a bad target is a flagged row of its file's output (:mod:`specdenoise.survey.targets`,
:class:`~specdenoise.survey.quality.Quality`), never a rejected file; a file that cannot be read
at all is listed in the summary and skipped, and the batch goes on. Every output is written
atomically (:mod:`specdenoise.survey.fits_out`) and
``<stem>.done.json`` is written last for each input, so a rerun with the same options skips
finished inputs (resume).

Output layout (``out_dir``): ``<stem>.denoised.fits`` per input (the data model of
:mod:`specdenoise.survey.fits_out`), with ``per_spectrum`` also ``<stem>.<spectrum id>.fits``
per spectrum (same layout, one row); ``<stem>.done.json`` per input, ``summary.json`` for the run.
"""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from specdenoise.errors import ConfigError, DataError
from specdenoise.io import save_json
from specdenoise.logs import VERBOSE_ENV, verbose
from specdenoise.survey.worker import done_path, file_stem, get_catalog, get_denoiser, process_batch, warm
from specdenoise.tracking import is_model_uri

log = logging.getLogger("specdenoise.denoise")

SUMMARY = "summary.json"
__all__ = [
    "TARGET_OPTIONS",
    "done_path",
    "file_stem",
    "get_denoiser",
    "is_done",
    "local_cluster",
    "process_batch",
    "run_batch",
    "warm",
]

#: Loggers of Dask held at WARNING unless --verbose (the nanny at ERROR: "Worker process still
#: alive after 4.0 seconds, killing" on every normal shutdown).
DASK_LOGGERS = (
    "distributed",
    "distributed.scheduler",
    "distributed.nanny",
    "distributed.core",
    "distributed.worker",
    "distributed.http.proxy",
)
#: Thread-count variables set to 1 in every local Dask worker.
THREAD_VARS = (
    "OMP_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "MKL_NUM_THREADS",
    "TF_NUM_INTRAOP_THREADS",
    "TF_NUM_INTEROP_THREADS",
)


def is_done(out_dir: Path, path: Path, options: dict[str, Any]) -> bool:
    """True when ``path`` was finished by an earlier run with the same options."""
    marker = done_path(out_dir, path)
    if not marker.exists():
        return False
    try:
        rec = json.loads(marker.read_text())
    except json.JSONDecodeError:
        return False
    return rec.get("options") == options and all((out_dir / o).exists() for o in rec.get("outputs", []))


#: Defaults of the per-target options of :func:`run_batch` (``options`` dict, also in done.json).
TARGET_OPTIONS: dict[str, Any] = {
    "max_masked": 0.5,
    "z_max": 1.0,
    "ood_chi2": 25.0,
    "redshifts": None,
    "id_column": "TARGETID",
    "z_column": "Z",
    "type_column": "SPECTYPE",
    "per_spectrum": False,
}


def _check_options(batch_size: int, workers: int, add_noise: float | None, opts: dict[str, Any]) -> None:
    if batch_size <= 0:
        raise ConfigError(f"--batch-size: must be positive, got {batch_size}")
    if workers < 0:
        raise ConfigError(f"--workers: must be >= 0, got {workers}")
    if not 0.0 <= opts["max_masked"] <= 1.0:
        raise ConfigError(f"--max-masked: must be within [0, 1], got {opts['max_masked']}")
    if not 0.0 < opts["z_max"] <= 1.0:
        raise ConfigError(f"--z-max: must be within (0, 1], got {opts['z_max']}")
    if not opts["ood_chi2"] > 0:
        raise ConfigError(f"--ood-chi2: must be positive, got {opts['ood_chi2']}")
    if add_noise is not None and not add_noise > 0:
        raise ConfigError(f"--add-noise: sigma must be positive, got {add_noise}")


def _plan(inputs: list[Path], out_dir: Path, options: dict[str, Any]) -> tuple[list[dict[str, Any]], list[str]]:
    """Records of inputs that are not run (a name clash, or done by an earlier run with the same
    options) and the paths still to do."""
    records: list[dict[str, Any]] = []
    todo: list[str] = []
    seen: dict[str, Path] = {}
    for p in inputs:
        stem = file_stem(p)
        if stem in seen:
            error = f"{p}: same name as {seen[stem]} (outputs would collide)"
            records.append({"input": str(p), "status": "bad", "error": error, "outputs": []})
            continue
        seen[stem] = p
        if is_done(out_dir, p, options):
            outputs = json.loads(done_path(out_dir, p).read_text())["outputs"]
            records.append({"input": str(p), "status": "skipped", "outputs": outputs})
        else:
            todo.append(str(p.resolve()) if p.exists() else str(p))
    return records, todo


def _summary(
    records: list[dict[str, Any]],
    n_inputs: int,
    seconds: float,
    n_workers: int,
    scheduler: str | None,
    model: str,
    out_dir: Path,
    options: dict[str, Any],
) -> dict[str, Any]:
    ok = [r for r in records if r["status"] == "ok"]
    n_spec = sum(r.get("n_spectra", 0) for r in ok)
    flags: dict[str, int] = {}
    for r in ok:
        for k, v in r.get("flags", {}).items():
            flags[k] = flags.get(k, 0) + v
    return {
        "model": model,
        "out": str(out_dir),
        "options": options,
        "scheduler": scheduler or ("local" if n_workers else "in-process"),
        "workers": n_workers,
        "n_inputs": n_inputs,
        "n_ok": sum(r["status"] == "ok" for r in records),
        "n_skipped": sum(r["status"] == "skipped" for r in records),
        "n_bad": sum(r["status"] == "bad" for r in records),
        "n_spectra": n_spec,
        "n_denoised": sum(r.get("n_denoised", 0) for r in ok),
        "flags": flags,
        "seconds": seconds,
        "spectra_per_s": n_spec / seconds if seconds > 0 and n_spec else 0.0,
        "bad": [{"input": r["input"], "error": r["error"]} for r in records if r["status"] == "bad"],
        "files": records,
    }


def run_batch(
    inputs: list[Path],
    out_dir: Path,
    model: str,
    params: Any,
    calibration: Path | None = None,
    add_noise: float | None = None,
    seed: int = 0,
    workers: int = 2,
    scheduler: str | None = None,
    batch_size: int = 8,
    root: Path | None = None,
    check_model: bool = True,
    progress: bool = False,
    **target_options: Any,
) -> dict[str, Any]:
    """De-noise ``inputs`` into ``out_dir``; return the summary (also written to ``summary.json``).

    Parameters
    ----------
    workers : int
        Local Dask workers (one thread each); 0 runs in this process. Ignored with ``scheduler``.
    check_model : bool
        Load the model here first, so a bad URI fails at once with one line.
    progress : bool
        Show a progress bar (files, spectra/s) on stderr.
    **target_options
        Keys of :data:`TARGET_OPTIONS`: ``max_masked``, ``z_max``, ``ood_chi2`` (quality flags),
        ``redshifts`` (catalogue path), ``id_column``, ``z_column``, ``type_column``, ``per_spectrum``.
    """
    unknown = set(target_options) - set(TARGET_OPTIONS)
    if unknown:
        raise TypeError(f"run_batch: unknown option(s) {', '.join(sorted(unknown))}")
    opts = {**TARGET_OPTIONS, **target_options}
    _check_options(batch_size, workers, add_noise, opts)
    if opts["redshifts"]:
        opts["redshifts"] = str(Path(opts["redshifts"]).resolve())
        get_catalog(opts)  # a bad catalogue fails here, once, with one line
    root_s = str((root or Path.cwd()).resolve())
    pdict = params.model_dump(by_alias=True)
    cal_s = str(Path(calibration).resolve()) if calibration else None
    model_s = model if is_model_uri(model) else str(Path(model).resolve())
    if check_model:
        prov = get_denoiser(model_s, pdict, cal_s, root_s).provenance
        log.info(
            "model %s: %s %s-D, run %s, calibration %s",
            model,
            prov.get("family"),
            prov.get("latent_dim"),
            prov.get("run_id"),
            prov.get("calibration") or "none",
        )
    options = {"model": model, "add_noise": add_noise, "seed": seed, "calibration": cal_s, **opts}
    out_dir.mkdir(parents=True, exist_ok=True)
    records, todo = _plan(inputs, out_dir, options)
    batches = [todo[i : i + batch_size] for i in range(0, len(todo), batch_size)]
    t0 = time.perf_counter()
    args = (str(out_dir.resolve()), model_s, pdict, cal_s, root_s, options)
    n_workers = 0
    with Progress(len(todo), progress) as bar:
        if batches and (scheduler or workers > 0):
            recs, n_workers = _run_dask(batches, args, scheduler, workers, bar)
            records += recs
        else:
            for b in batches:
                recs = process_batch(b, *args)
                bar.update(recs)
                records += recs
    summary = _summary(records, len(inputs), time.perf_counter() - t0, n_workers, scheduler, model, out_dir, options)
    save_json(out_dir / SUMMARY, summary)
    return summary


class Progress:
    """A tqdm bar over input files on stderr with the running spectra/s (disabled when not wanted)."""

    def __init__(self, n_files: int, enabled: bool) -> None:
        self.bar = tqdm(total=n_files, unit="file", desc="denoise", disable=not enabled, leave=False)
        self.t0, self.n_spec = time.perf_counter(), 0

    def update(self, records: list[dict[str, Any]]) -> None:
        self.n_spec += sum(r.get("n_spectra", 0) for r in records)
        rate = self.n_spec / max(time.perf_counter() - self.t0, 1e-9)
        self.bar.set_postfix_str(f"{self.n_spec} spectra, {rate:.0f} spectra/s", refresh=False)
        self.bar.update(len(records))

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.bar.close()


def local_cluster(workers: int) -> Any:
    """A local Dask cluster of ``workers`` single-threaded processes on 127.0.0.1."""
    from distributed import LocalCluster

    if not verbose():  # distributed sets its loggers' levels when imported: hold them back now
        for name in DASK_LOGGERS:
            logging.getLogger(name).setLevel(logging.ERROR if name == "distributed.nanny" else logging.WARNING)
    env = {v: "1" for v in THREAD_VARS}
    env[VERBOSE_ENV] = os.environ.get(VERBOSE_ENV, "0")
    env["TF_CPP_MIN_LOG_LEVEL"] = os.environ.get("TF_CPP_MIN_LOG_LEVEL", "3")  # the CLI's choice (--verbose: 0)
    return LocalCluster(
        n_workers=workers,
        threads_per_worker=1,
        processes=True,
        host="127.0.0.1",
        dashboard_address="127.0.0.1:0",
        scheduler_port=0,
        silence_logs=logging.WARNING,
        env=env,
    )


def _run_dask(
    batches: list[list[str]], args: tuple, scheduler: str | None, workers: int, bar: Progress | None = None
) -> tuple[list[dict[str, Any]], int]:
    from distributed import Client, as_completed

    cluster = None
    try:
        if scheduler:
            try:
                client = Client(scheduler, timeout="20s")
            except (OSError, TimeoutError, ValueError) as exc:
                raise DataError(f"--scheduler {scheduler}: cannot connect ({type(exc).__name__}: {exc})") from None
        else:
            cluster = local_cluster(workers)
            client = Client(cluster)
        with client:
            n_workers = len(client.scheduler_info().get("workers", {}))
            futures = {client.submit(process_batch, b, *args, pure=False): b for b in batches}
            out: list[dict[str, Any]] = []
            for fut in as_completed(futures):
                try:
                    recs = fut.result()
                except Exception as exc:  # a worker died: report its files, keep the rest
                    msg = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
                    recs = [
                        {"input": f, "status": "bad", "error": f"{f}: worker failed ({msg})", "outputs": []}
                        for f in futures[fut]
                    ]
                if bar is not None:
                    bar.update(recs)
                out += recs
            return out, n_workers
    finally:
        if cluster is not None:
            cluster.close()
