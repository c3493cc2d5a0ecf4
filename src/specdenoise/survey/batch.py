"""Batch de-noising of survey files (``specdenoise denoise``): one output FITS per input file.

Files are processed in batches on a Dask cluster: a local one (``workers`` single-threaded
processes bound to 127.0.0.1, TLS-secured with temporary credentials: :mod:`.cluster`) by
default, an existing one given by ``scheduler`` (its workers need this package and access to the
model; ``tls://`` with a security file), or in this process with ``workers=0``.

Robustness: a bad target is a flagged row of its file's output (:mod:`specdenoise.survey.targets`,
:class:`~specdenoise.survey.quality.Quality`), never a rejected file; a file that cannot be read
at all is listed in the summary and skipped, and the batch goes on. Every output is written
atomically (:mod:`specdenoise.survey.fits_out`) and
``<stem>.done.json`` is written last for each input, so a rerun with the same options skips
finished inputs whose input and outputs are unchanged (resume: :mod:`.resume`). The output
folder is checked and locked first (:mod:`.outdir`).

Output layout (``out_dir``): ``<stem>.denoised.fits`` per input (the data model of
:mod:`specdenoise.survey.fits_out`), with ``per_spectrum`` also ``<stem>.<spectrum id>.fits``
per spectrum (same layout, one row); ``<stem>.done.json`` per input, ``summary.json`` for the run.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from specdenoise.errors import ConfigError
from specdenoise.io import save_json
from specdenoise.survey.cluster import THREAD_VARS, connect, local_cluster
from specdenoise.survey.outdir import OutputLock, check_out_dir, clean_stale_temps
from specdenoise.survey.resume import SUMMARY, check_done, check_markers, done_path, file_stem, load_done, output_names
from specdenoise.survey.target_options import TARGET_OPTIONS
from specdenoise.survey.worker import get_catalog, get_denoiser, process_batch, warm
from specdenoise.tracking import is_model_uri

log = logging.getLogger("specdenoise.denoise")

__all__ = [
    "SUMMARY",
    "TARGET_OPTIONS",
    "THREAD_VARS",
    "done_path",
    "file_stem",
    "get_denoiser",
    "local_cluster",
    "process_batch",
    "run_batch",
    "warm",
]


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
        ok, why = check_done(out_dir, p, options)
        if ok:
            records.append({"input": str(p), "status": "skipped", "outputs": output_names(load_done(out_dir, p) or {})})
            continue
        if why != "no record":
            log.info("%s: done before, but %s: redoing it", p, why)
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
    security_file: Path | None = None,
    **target_options: Any,
) -> dict[str, Any]:
    """De-noise ``inputs`` into ``out_dir``; return the summary (also written to ``summary.json``).

    Before any work the output folder is checked (:func:`~specdenoise.survey.outdir.check_out_dir`)
    and locked for the run (:class:`~specdenoise.survey.outdir.OutputLock`: a second run into the
    same folder stops with exit 2), temporary files of killed runs are removed, and each input's
    resume record is re-checked (:func:`~specdenoise.survey.resume.check_done`). A run that fails
    before writing anything removes the folder it created.

    Parameters
    ----------
    workers : int
        Local Dask workers (one thread each); 0 runs in this process. Ignored with ``scheduler``.
    scheduler : str, optional
        An existing Dask scheduler, ``tls://HOST:PORT`` (with ``security_file`` or the dask
        config's ``distributed.comm.tls`` settings) or ``tcp://HOST:PORT``.
    security_file : Path, optional
        YAML with ``tls_ca_file``, ``tls_client_cert``, ``tls_client_key`` for ``scheduler``
        (:func:`specdenoise.survey.cluster.client_security`).
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
    created = not Path(out_dir).exists()
    real_out = check_out_dir(out_dir, inputs)
    try:
        check_markers(real_out, inputs)
        with OutputLock(real_out):
            clean_stale_temps(real_out)
            return _run_locked(
                inputs, out_dir, model, params, calibration, add_noise, seed, workers, scheduler, batch_size,
                root, check_model, progress, security_file, opts,
            )  # fmt: skip
    except BaseException:
        if created and real_out.is_dir() and not any(real_out.iterdir()):
            real_out.rmdir()  # a run that failed before writing anything leaves no empty folder behind
        raise


def _run_locked(
    inputs: list[Path],
    out_dir: Path,
    model: str,
    params: Any,
    calibration: Path | None,
    add_noise: float | None,
    seed: int,
    workers: int,
    scheduler: str | None,
    batch_size: int,
    root: Path | None,
    check_model: bool,
    progress: bool,
    security_file: Path | None,
    opts: dict[str, Any],
) -> dict[str, Any]:
    if opts["redshifts"]:
        opts["redshifts"] = str(Path(opts["redshifts"]).resolve())
        get_catalog(opts)  # a bad catalogue fails here, once, with one line
    root_s = str((root or Path.cwd()).resolve())
    pdict = params.model_dump(by_alias=True)
    cal_s = str(Path(calibration).resolve()) if calibration else None
    model_s = model if is_model_uri(model) else str(Path(model).resolve())
    identity = None
    if check_model:
        prov = get_denoiser(model_s, pdict, cal_s, root_s).provenance
        identity = {k: prov.get(k) for k in ("run_id", "model_version", "params_hash", "family", "latent_dim")}
        log.info(
            "model %s: %s %s-D, run %s, calibration %s",
            model,
            prov.get("family"),
            prov.get("latent_dim"),
            prov.get("run_id"),
            prov.get("calibration") or "none",
        )
    options = {
        "model": model, "model_identity": identity, "add_noise": add_noise, "seed": seed, "calibration": cal_s, **opts
    }  # fmt: skip
    records, todo = _plan(inputs, out_dir, options)
    batches = [todo[i : i + batch_size] for i in range(0, len(todo), batch_size)]
    t0 = time.perf_counter()
    args = (str(out_dir.resolve()), model_s, pdict, cal_s, root_s, options)
    n_workers = 0
    with Progress(len(todo), progress) as bar:
        if batches and (scheduler or workers > 0):
            recs, n_workers = _run_dask(batches, args, scheduler, workers, bar, security_file)
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


def _run_dask(
    batches: list[list[str]],
    args: tuple,
    scheduler: str | None,
    workers: int,
    bar: Progress | None = None,
    security_file: Path | None = None,
) -> tuple[list[dict[str, Any]], int]:
    from distributed import Client, as_completed

    cluster = None
    try:
        if scheduler:
            client = connect(scheduler, security_file)
        else:
            cluster = local_cluster(workers)
            client = Client(cluster, security=cluster.security)
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
