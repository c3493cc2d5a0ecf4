"""Batch de-noising of survey files (``specdenoise denoise``): files in, one FITS per spectrum out.

Files are processed in batches on a Dask cluster: a local one (``workers`` single-threaded
processes bound to 127.0.0.1, TLS-secured with temporary credentials: :mod:`.cluster`) by
default, an existing one given by ``scheduler`` (its workers
need this package and access to the model), or in this process with ``workers=0``.

Robustness: a file that cannot be read or de-noised is listed in the summary and skipped; the
batch goes on. Every output is written atomically (:mod:`specdenoise.survey.fits_out`) and
``<stem>.done.json`` is written last for each input, so a rerun with the same options skips
finished inputs whose input and outputs are unchanged (resume: :mod:`.resume`). The output
folder is checked and locked first (:mod:`.outdir`).

Output layout (``out_dir``): ``<stem>.<spectrum id>.fits`` per spectrum, ``<stem>.done.json``
per input, ``summary.json`` for the run.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any

import numpy as np

from specdenoise.config import parse_params
from specdenoise.errors import ConfigError, SpecdenoiseError
from specdenoise.io import save_json
from specdenoise.survey.cluster import THREAD_VARS, connect, local_cluster  # noqa: F401 (re-exported)
from specdenoise.survey.denoiser import Denoiser
from specdenoise.survey.fits_out import write_fits
from specdenoise.survey.outdir import OutputLock, check_out_dir, clean_stale_temps
from specdenoise.survey.readers import read_spectra
from specdenoise.survey.resume import (
    SUMMARY,
    check_done,
    check_markers,
    file_stem,
    input_record,
    load_done,
    output_names,
    write_done,
)
from specdenoise.tracking import is_model_uri

log = logging.getLogger("specdenoise.denoise")

_DENOISERS: dict[str, Any] = {}  # per-process cache of loaded de-noisers (filled lazily)


def _safe(text: str) -> str:
    return "".join(c if c.isalnum() or c in "-_+." else "_" for c in text)


# ----------------------------------------------------------------------------- worker side
def get_denoiser(model: str, params: dict[str, Any], calibration: str | None, root: str) -> Any:
    key = json.dumps([model, params, calibration, root], sort_keys=True, default=str)
    if key not in _DENOISERS:
        _DENOISERS[key] = Denoiser.load(model, parse_params(params), calibration, Path(root))
    return _DENOISERS[key]


def warm(model: str, params: dict[str, Any], calibration: str | None, root: str) -> int:
    """Load the de-noiser in this process (a Dask worker) ahead of timing; returns its pixel count."""
    return int(get_denoiser(model, params, calibration, root).preprocess_cfg.n_pix)


def _prepare_file(den: Denoiser, path: Path, max_masked: float) -> list[tuple[Any, dict[str, Any]]]:
    """Every spectrum of one file, read and prepared; a SpecdenoiseError names the file (and spectrum)."""
    spectra = read_spectra(path)
    if not spectra:
        raise SpecdenoiseError(f"{path}: no spectra in file")
    out = []
    for s in spectra:
        pre = den.prepare(s.wave, s.flux, s.ivar, s.z, [s.id], source=f"{path} ({s.id})")
        frac = float(pre["mask"].mean())
        if frac > max_masked:
            raise SpecdenoiseError(
                f"{path} ({s.id}): {100 * frac:.0f}% of the rest-frame grid is uncovered "
                f"(z={s.z:.4f}; limit --max-masked {max_masked})"
            )
        out.append((s, pre))
    return out


def _write_one(
    out: Path, den: Denoiser, res: Any, j: int, spec: Any, rec: dict[str, Any], options: dict[str, Any]
) -> None:
    """Write spectrum ``j`` of the de-noised batch and add it to its file's record."""
    name = f"{file_stem(Path(rec['input']))}.{_safe(spec.id)}.fits"
    write_fits(out / name, den, res, j, spec, rec["input"], options)
    rec["outputs"].append(name)
    mask = res.mask[j]
    uncovered = uncovered_ranges(res.wave, mask)
    rec["spectra"].append({"id": spec.id, "z": spec.z, "masked_fraction": float(mask.mean()), "uncovered": uncovered})


def _first_line(exc: Exception) -> str:
    return f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"


def process_batch(
    files: list[str],
    out_dir: str,
    model: str,
    params: dict[str, Any],
    calibration: str | None,
    root: str,
    options: dict[str, Any],
) -> list[dict[str, Any]]:
    """Read, de-noise and write every spectrum of ``files``; one status record per file.

    Never raises for a bad input: the file's record says ``status: "bad"`` and why.
    """
    den = get_denoiser(model, params, calibration, root)
    out = Path(out_dir)
    records: list[dict[str, Any]] = []
    good: list[tuple[int, Any, dict[str, Any]]] = []  # (file index, Spectrum, prepared)
    t0 = time.perf_counter()
    for path in map(Path, files):
        rec: dict[str, Any] = {"input": str(path), "status": "ok", "outputs": [], "spectra": []}
        records.append(rec)
        try:
            if path.is_file():  # hashed before reading, so a later change is seen on resume
                rec["identity"] = input_record(path)
            good += [(len(records) - 1, s, pre) for s, pre in _prepare_file(den, path, options["max_masked"])]
        except SpecdenoiseError as exc:
            rec.update(status="bad", error=str(exc))
        except OSError as exc:
            rec.update(status="bad", error=f"{path}: cannot read ({exc.strerror or exc})")
        except Exception as exc:  # never stop the batch on one file
            rec.update(status="bad", error=f"{path}: {_first_line(exc)}")
    good = [g for g in good if records[g[0]]["status"] == "ok"]
    if good:
        keys = ("flux", "ivar", "norm", "coverage", "z", "mask", "id")
        batch = {k: np.concatenate([g[2][k] for g in good]) for k in keys}
        try:
            res = den.finish(batch, options["add_noise"], options["seed"])
        except Exception as exc:
            for i, _, _ in good:
                records[i].update(status="bad", error=f"{records[i]['input']}: de-noising failed ({_first_line(exc)})")
            good, res = [], None
        for j, (i, spec, _) in enumerate(good):
            rec = records[i]
            if rec["status"] != "ok":
                continue
            try:
                _write_one(out, den, res, j, spec, rec, options)
            except Exception as exc:
                rec.update(status="bad", error=f"{rec['input']}: cannot write output ({_first_line(exc)})")
    dt = time.perf_counter() - t0
    for rec in records:
        rec["seconds"] = dt / max(len(records), 1)
        ident = rec.pop("identity", None)
        if rec["status"] == "ok" and ident is not None:  # no record (redone next time) for a non-regular file
            write_done(out, ident, options, rec["outputs"], spectra=rec["spectra"])
    return records


def uncovered_ranges(wave: Any, mask: Any) -> list[list[float]]:
    """Contiguous masked wavelength ranges ``[[lo, hi], ...]`` (A) of one spectrum."""
    m = np.asarray(mask, bool)
    out, i = [], 0
    while i < len(m):
        if m[i]:
            j = i
            while j + 1 < len(m) and m[j + 1]:
                j += 1
            out.append([round(float(wave[i]), 1), round(float(wave[j]), 1)])
            i = j + 1
        else:
            i += 1
    return out


def _check_options(batch_size: int, workers: int, max_masked: float, add_noise: float | None) -> None:
    if batch_size <= 0:
        raise ConfigError(f"--batch-size: must be positive, got {batch_size}")
    if workers < 0:
        raise ConfigError(f"--workers: must be >= 0, got {workers}")
    if not 0.0 <= max_masked <= 1.0:
        raise ConfigError(f"--max-masked: must be within [0, 1], got {max_masked}")
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
    n_spec = sum(len(r.get("spectra", [])) for r in records if r["status"] == "ok")
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
    max_masked: float = 0.5,
    root: Path | None = None,
    check_model: bool = True,
    security_file: Path | None = None,
) -> dict[str, Any]:
    """De-noise ``inputs`` into ``out_dir``; return the summary (also written to ``summary.json``).

    Before any work the output folder is checked (:func:`~specdenoise.survey.outdir.check_out_dir`)
    and locked for the run (:class:`~specdenoise.survey.outdir.OutputLock`: a second run into the
    same folder stops with exit 2), temporary files of killed runs are removed, and each input's
    resume record is re-checked (:func:`~specdenoise.survey.resume.check_done`).

    Parameters
    ----------
    workers : int
        Local Dask workers (one thread each); 0 runs in this process. Ignored with ``scheduler``.
    scheduler : str, optional
        An existing Dask scheduler, ``tls://HOST:PORT`` (with ``security_file`` or the dask
        config's ``distributed.comm.tls`` settings) or ``tcp://HOST:PORT``.
    check_model : bool
        Load the model here first, so a bad URI fails at once with one line.
    security_file : Path, optional
        YAML with ``tls_ca_file``, ``tls_client_cert``, ``tls_client_key`` for ``scheduler``
        (:func:`specdenoise.survey.cluster.client_security`).
    """
    _check_options(batch_size, workers, max_masked, add_noise)
    created = not Path(out_dir).exists()
    real_out = check_out_dir(out_dir, inputs)
    try:
        check_markers(real_out, inputs)
        with OutputLock(real_out):
            clean_stale_temps(real_out)
            return _run_locked(
                inputs, out_dir, model, params, calibration, add_noise, seed, workers, scheduler, batch_size,
                max_masked, root, check_model, security_file,
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
    max_masked: float,
    root: Path | None,
    check_model: bool,
    security_file: Path | None,
) -> dict[str, Any]:
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
        "model": model,
        "model_identity": identity,
        "add_noise": add_noise,
        "seed": seed,
        "max_masked": max_masked,
        "calibration": cal_s,
    }
    records, todo = _plan(inputs, out_dir, options)
    batches = [todo[i : i + batch_size] for i in range(0, len(todo), batch_size)]
    t0 = time.perf_counter()
    args = (str(out_dir.resolve()), model_s, pdict, cal_s, root_s, options)
    n_workers = 0
    if batches and (scheduler or workers > 0):
        recs, n_workers = _run_dask(batches, args, scheduler, workers, security_file)
        records += recs
    else:
        for b in batches:
            records += process_batch(b, *args)
    summary = _summary(records, len(inputs), time.perf_counter() - t0, n_workers, scheduler, model, out_dir, options)
    save_json(out_dir / SUMMARY, summary)
    return summary


def _run_dask(
    batches: list[list[str]], args: tuple, scheduler: str | None, workers: int, security_file: Path | None = None
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
                    out += fut.result()
                except Exception as exc:  # a worker died: report its files, keep the rest
                    msg = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
                    out += [
                        {"input": f, "status": "bad", "error": f"{f}: worker failed ({msg})", "outputs": []}
                        for f in futures[fut]
                    ]
            return out, n_workers
    finally:
        if cluster is not None:
            cluster.close()
