"""``specdenoise denoise``, ``specdenoise uncertainty`` and ``specdenoise bench denoise``.

``denoise`` reads survey FITS files (:func:`specdenoise.survey.readers.read_spectra`), de-noises every
spectrum with a :class:`~specdenoise.survey.denoiser.Denoiser` and writes one FITS file per spectrum.
Files are processed in batches on a Dask cluster: a local one (``--workers N``, bound to
127.0.0.1) by default, an existing one with ``--scheduler tcp://HOST:PORT`` (its workers need
this package and access to the model: the MLflow store or the model directory), or in this
process with ``--workers 0``.

Robustness: a file that cannot be read or de-noised is listed in the summary and skipped; the
batch goes on. Every output is written atomically, and ``<stem>.done.json`` is written last
for each input, so a rerun with the same options skips finished inputs (resume).

Output layout (``--out DIR``): ``<stem>.<spectrum id>.fits`` per spectrum, ``<stem>.done.json``
per input, ``summary.json`` for the run (also printed on stdout).
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Annotated, Any

import typer

log = logging.getLogger("specdenoise.denoise")

_DENOISERS: dict[str, Any] = {}  # per-process cache of loaded de-noisers (filled lazily)
SUMMARY = "summary.json"
ParamsOpt = Annotated[Path, typer.Option("--params", "-p", help="Parameters file (MLflow store; preprocessing of legacy models).")]


# ----------------------------------------------------------------------------- file naming
def file_stem(path: Path) -> str:
    """``spec-0266-51602-0001.fits(.gz)`` -> ``spec-0266-51602-0001``."""
    name = path.name
    for ext in (".fits.gz", ".fit.gz", ".fits", ".fit", ".fz"):
        if name.lower().endswith(ext):
            return name[: -len(ext)]
    return path.stem


def _safe(text: str) -> str:
    return "".join(c if c.isalnum() or c in "-_+." else "_" for c in text)


def done_path(out_dir: Path, path: Path) -> Path:
    return out_dir / f"{file_stem(path)}.done.json"


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


# ----------------------------------------------------------------------------- worker side
def _denoiser(model: str, params: dict[str, Any], calibration: str | None, root: str) -> Any:
    key = json.dumps([model, params, calibration, root], sort_keys=True, default=str)
    if key not in _DENOISERS:
        from specdenoise.config import parse_params
        from specdenoise.survey.denoiser import Denoiser

        _DENOISERS[key] = Denoiser.load(model, parse_params(params), calibration, Path(root))
    return _DENOISERS[key]


def warm(model: str, params: dict[str, Any], calibration: str | None, root: str) -> int:
    """Load the de-noiser in this process (a Dask worker) ahead of timing; returns its pixel count."""
    return int(_denoiser(model, params, calibration, root).preprocess_cfg.n_pix)


def process_batch(files: list[str], out_dir: str, model: str, params: dict[str, Any], calibration: str | None, root: str, options: dict[str, Any]) -> list[dict[str, Any]]:
    """Read, de-noise and write every spectrum of ``files``; one status record per file.

    Never raises for a bad input: the file's record says ``status: "bad"`` and why.
    """
    from specdenoise.errors import SpecdenoiseError
    from specdenoise.survey.readers import read_spectra

    den = _denoiser(model, params, calibration, root)
    out = Path(out_dir)
    records: list[dict[str, Any]] = []
    prepared: list[tuple[int, Any, dict[str, Any]]] = []  # (file index, Spectrum, prepared)
    t0 = time.perf_counter()
    for path_s in files:
        path = Path(path_s)
        rec: dict[str, Any] = {"input": str(path), "status": "ok", "outputs": [], "spectra": []}
        records.append(rec)
        try:
            spectra = read_spectra(path)
            if not spectra:
                raise SpecdenoiseError(f"{path}: no spectra in file")
            for s in spectra:
                pre = den.prepare(s.wave, s.flux, s.ivar, s.z, [s.id], source=f"{path} ({s.id})")
                frac = float(pre["mask"].mean())
                if frac > options["max_masked"]:
                    raise SpecdenoiseError(f"{path} ({s.id}): {100 * frac:.0f}% of the rest-frame grid is uncovered "
                                           f"(z={s.z:.4f}; limit --max-masked {options['max_masked']})")  # fmt: skip
                prepared.append((len(records) - 1, s, pre))
        except SpecdenoiseError as exc:
            rec.update(status="bad", error=str(exc))
        except Exception as exc:  # never stop the batch on one file
            rec.update(status="bad", error=f"{path}: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}")
    good = [p for p in prepared if records[p[0]]["status"] == "ok"]
    if good:
        import numpy as np

        batch = {k: np.concatenate([p[2][k] for p in good]) for k in ("flux", "ivar", "norm", "coverage", "z", "mask", "id")}
        try:
            res = den.finish(batch, options["add_noise"], options["seed"])
        except Exception as exc:
            for i, _, _ in good:
                records[i].update(status="bad", error=f"{records[i]['input']}: de-noising failed ({type(exc).__name__}: {exc})")
            good, res = [], None
        for j, (i, spec, _) in enumerate(good):
            rec = records[i]
            if rec["status"] != "ok":
                continue
            try:
                name = f"{file_stem(Path(rec['input']))}.{_safe(spec.id)}.fits"
                write_fits(out / name, den, res, j, spec, rec["input"], options)
                rec["outputs"].append(name)
                rec["spectra"].append({"id": spec.id, "z": spec.z, "masked_fraction": float(res.mask[j].mean()),
                                       "uncovered": uncovered_ranges(res.wave, res.mask[j])})  # fmt: skip
            except Exception as exc:
                rec.update(status="bad", error=f"{rec['input']}: cannot write output ({type(exc).__name__}: {exc})")
    from specdenoise.io import save_json

    dt = time.perf_counter() - t0
    for rec in records:
        rec["seconds"] = dt / max(len(records), 1)
        if rec["status"] == "ok":
            save_json(done_path(out, Path(rec["input"])), {"options": options, "outputs": rec["outputs"], "spectra": rec["spectra"]})
    return records


def uncovered_ranges(wave: Any, mask: Any) -> list[list[float]]:
    """Contiguous masked wavelength ranges ``[[lo, hi], ...]`` (A) of one spectrum."""
    import numpy as np

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


def write_fits(path: Path, den: Any, res: Any, j: int, spec: Any, source: str, options: dict[str, Any]) -> Path:
    """One de-noised spectrum as a FITS binary table (``DENOISED``) with provenance, atomically."""
    import numpy as np
    from astropy.io import fits

    from specdenoise import __version__
    from specdenoise.io import atomic_path

    cols = [
        fits.Column("WAVE", "E", unit="Angstrom", array=np.asarray(res.wave, np.float32)),
        fits.Column("FLUX_INPUT", "E", array=res.input[j]),
        fits.Column("IVAR_INPUT", "E", array=np.asarray(res.ivar[j], np.float32)),
        fits.Column("FLUX_DENOISED", "E", array=res.denoised[j]),
        fits.Column("SIGMA", "E", array=np.asarray(res.sigma[j], np.float32)),
        fits.Column("MASK", "B", array=res.mask[j].astype(np.uint8)),
    ]
    if res.clean is not None:
        cols.append(fits.Column("FLUX_CLEAN", "E", array=res.clean[j]))
    table = fits.BinTableHDU.from_columns(cols, name="DENOISED")
    hdr = fits.Header()
    prov = den.provenance
    cards = [
        ("MODELURI", str(prov.get("model_uri", "")), "model URI given"),
        ("MODELNAM", str(prov.get("model_name") or ""), "model name"),
        ("MODELVER", str(prov.get("model_version") or ""), "registered model version"),
        ("RUNID", str(prov.get("run_id") or ""), "MLflow run id"),
        ("PARHASH", str(prov.get("params_hash") or ""), "hash of the training parameters"),
        ("FAMILY", str(prov.get("family", "")), "model family"),
        ("LATDIM", int(prov.get("latent_dim", 0)), "latent dimension"),
        ("PREPSRC", str(prov.get("preprocess_source", "")), "preprocessing source"),
        ("SDVERS", __version__, "specdenoise version"),
        ("INFILE", str(source), "input file"),
        ("SPECID", str(spec.id), "spectrum id"),
        ("Z", float(spec.z), "redshift used for the rest frame"),
        ("NORM", float(res.norm[j]), "x column = 1e-17 erg/s/cm2/A (rest)"),
        ("NORMKIND", den.preprocess_cfg.norm, "normalisation"),
        ("WMEDIUM", "air", "wavelengths: rest frame, air"),
        ("ADDNOISE", float(options["add_noise"] or 0.0), "sigma of added noise (0 = none)"),
        ("NSEED", int(options["seed"]), "seed of the added noise"),
        ("CALIB", bool(res.calibrated), "SIGMA calibrated on validation data"),
        ("CALSRC", str(prov.get("calibration") or ""), "calibration record"),
        ("MASKFRAC", float(res.mask[j].mean()), "fraction of bins with MASK=1"),
    ]
    for key, value, comment in cards:
        hdr[key] = (value, comment)
    hdr["COMMENT"] = "MASK=1: bin not covered by the observed spectrum; its values are model output, not data."
    with atomic_path(path, suffix=".fits") as tmp:
        fits.HDUList([fits.PrimaryHDU(header=hdr), table]).writeto(tmp, overwrite=True)
    return path


# ----------------------------------------------------------------------------- client side
def run_batch(inputs: list[Path], out_dir: Path, model: str, params: Any, calibration: Path | None = None, add_noise: float | None = None,
              seed: int = 0, workers: int = 2, scheduler: str | None = None, batch_size: int = 8, max_masked: float = 0.5,
              root: Path | None = None, check_model: bool = True) -> dict[str, Any]:  # fmt: skip
    """De-noise ``inputs`` into ``out_dir``; return the summary (also written to ``summary.json``).

    Parameters
    ----------
    workers : int
        Local Dask workers (one thread each); 0 runs in this process. Ignored with ``scheduler``.
    check_model : bool
        Load the model here first, so a bad URI fails at once with one line.
    """
    from specdenoise.errors import ConfigError
    from specdenoise.io import save_json

    if batch_size <= 0:
        raise ConfigError(f"--batch-size: must be positive, got {batch_size}")
    if workers < 0:
        raise ConfigError(f"--workers: must be >= 0, got {workers}")
    if not 0.0 <= max_masked <= 1.0:
        raise ConfigError(f"--max-masked: must be within [0, 1], got {max_masked}")
    if add_noise is not None and not add_noise > 0:
        raise ConfigError(f"--add-noise: sigma must be positive, got {add_noise}")
    root_s = str((root or Path.cwd()).resolve())
    pdict = params.model_dump(by_alias=True)
    cal_s = str(Path(calibration).resolve()) if calibration else None
    model_s = model if model.startswith(("models:/", "runs:/")) else str(Path(model).resolve())
    if check_model:
        den = _denoiser(model_s, pdict, cal_s, root_s)
        log.info("model %s: %s %s-D, run %s, sigma %s", model, den.provenance.get("family"), den.provenance.get("latent_dim"),
                 den.provenance.get("run_id"), "calibrated" if den.calibration is not None else "uncalibrated")  # fmt: skip
    options = {"model": model, "add_noise": add_noise, "seed": seed, "max_masked": max_masked, "calibration": cal_s}
    out_dir.mkdir(parents=True, exist_ok=True)
    records: list[dict[str, Any]] = []
    todo: list[str] = []
    seen: dict[str, Path] = {}
    for p in inputs:
        stem = file_stem(p)
        if stem in seen:
            records.append({"input": str(p), "status": "bad", "error": f"{p}: same name as {seen[stem]} (outputs would collide)", "outputs": []})
            continue
        seen[stem] = p
        if is_done(out_dir, p, options):
            records.append({"input": str(p), "status": "skipped", "outputs": json.loads(done_path(out_dir, p).read_text())["outputs"]})
        else:
            todo.append(str(p.resolve()) if p.exists() else str(p))
    batches = [todo[i : i + batch_size] for i in range(0, len(todo), batch_size)]
    t0 = time.perf_counter()
    args = (str(out_dir.resolve()), model_s, pdict, cal_s, root_s, options)
    n_workers = 0
    if batches and (scheduler or workers > 0):
        recs, n_workers = _run_dask(batches, args, scheduler, workers)
        records += recs
    else:
        for b in batches:
            records += process_batch(b, *args)
    dt = time.perf_counter() - t0
    n_spec = sum(len(r.get("spectra", [])) for r in records if r["status"] == "ok")
    summary = {
        "model": model, "out": str(out_dir), "options": options, "scheduler": scheduler or ("local" if n_workers else "in-process"),
        "workers": n_workers, "n_inputs": len(inputs), "n_ok": sum(r["status"] == "ok" for r in records),
        "n_skipped": sum(r["status"] == "skipped" for r in records), "n_bad": sum(r["status"] == "bad" for r in records),
        "n_spectra": n_spec, "seconds": dt, "spectra_per_s": n_spec / dt if dt > 0 and n_spec else 0.0,
        "bad": [{"input": r["input"], "error": r["error"]} for r in records if r["status"] == "bad"],
        "files": records,
    }  # fmt: skip
    save_json(out_dir / SUMMARY, summary)
    return summary


def local_cluster(workers: int) -> Any:
    """A local Dask cluster of ``workers`` single-threaded processes on 127.0.0.1."""
    from distributed import LocalCluster

    env = {v: "1" for v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS")}
    env["TF_CPP_MIN_LOG_LEVEL"] = "2"
    if logging.getLogger("specdenoise").getEffectiveLevel() > logging.DEBUG:
        for name in ("distributed", "distributed.scheduler", "distributed.nanny", "distributed.core", "distributed.http.proxy"):
            logging.getLogger(name).setLevel(logging.WARNING)
    return LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, host="127.0.0.1", dashboard_address="127.0.0.1:0",
                        scheduler_port=0, silence_logs=logging.WARNING, env=env)  # fmt: skip


def _run_dask(batches: list[list[str]], args: tuple, scheduler: str | None, workers: int) -> tuple[list[dict[str, Any]], int]:
    from distributed import Client, as_completed

    from specdenoise.errors import DataError

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
                    out += fut.result()
                except Exception as exc:  # a worker died: report its files, keep the rest
                    msg = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
                    out += [{"input": f, "status": "bad", "error": f"{f}: worker failed ({msg})", "outputs": []} for f in futures[fut]]
            return out, n_workers
    finally:
        if cluster is not None:
            cluster.close()


def bench_denoise(files: list[Path], model: str, params: Any, worker_counts: list[int], copies: int, batch_size: int, root: Path | None = None) -> dict[str, Any]:
    """Throughput of ``denoise`` with 1, 2, ... local Dask workers on ``copies`` x ``files``.

    The model is loaded on every worker before timing (``warm``), so the rate is the steady
    state of reading, preprocessing, de-noising (with uncertainty) and writing FITS; the
    end-to-end time including cluster start-up and model loading is reported too, and so is
    the 1-minute load average before each run (other work on the machine skews the speed-up).
    """
    import os
    import shutil
    import tempfile

    from specdenoise import __version__

    root_s = str((root or Path.cwd()).resolve())
    pdict = params.model_dump(by_alias=True)
    model_s = model if model.startswith(("models:/", "runs:/")) else str(Path(model).resolve())
    den = _denoiser(model_s, pdict, None, root_s)
    results = []
    with tempfile.TemporaryDirectory(prefix="specdenoise-bench-") as tmp:
        inp = Path(tmp) / "in"
        inp.mkdir()
        paths = []
        for k in range(copies):
            for f in files:
                dst = inp / f"{file_stem(f)}-{k:04d}.fits"
                shutil.copyfile(f, dst)
                paths.append(str(dst))
        batches = [paths[i : i + batch_size] for i in range(0, len(paths), batch_size)]
        options = {"model": model, "add_noise": None, "seed": 0, "max_masked": 0.5, "calibration": None}
        for n in worker_counts:
            out = Path(tmp) / f"out{n}"
            load_before = os.getloadavg()[0]
            t0 = time.perf_counter()
            cluster = local_cluster(n)
            from distributed import Client, as_completed

            with Client(cluster) as client:
                client.run(warm, model_s, pdict, None, root_s)
                t1 = time.perf_counter()
                futs = [client.submit(process_batch, b, str(out), model_s, pdict, None, root_s, options, pure=False) for b in batches]
                recs = [r for f in as_completed(futs) for r in f.result()]
                t2 = time.perf_counter()
            cluster.close()
            n_spec = sum(len(r["spectra"]) for r in recs if r["status"] == "ok")
            results.append({"workers": n, "n_files": len(paths), "n_spectra": n_spec, "n_bad": sum(r["status"] == "bad" for r in recs),
                            "seconds": round(t2 - t1, 3), "spectra_per_s": round(n_spec / (t2 - t1), 1),
                            "seconds_end_to_end": round(t2 - t0, 3), "load_avg_1min_before": round(load_before, 2)})  # fmt: skip
            log.info("bench denoise: %d worker(s): %.1f spectra/s", n, n_spec / (t2 - t1))
    base = results[0]["spectra_per_s"] if results else None
    for r in results:
        r["speedup"] = round(r["spectra_per_s"] / base, 2) if base else None
    return {"model": model, "family": den.provenance.get("family"), "latent_dim": den.provenance.get("latent_dim"),
            "calibrated_sigma": den.calibration is not None, "inputs": [str(f) for f in files], "copies": copies, "batch_size": batch_size,
            "cpu_count": os.cpu_count(), "specdenoise": __version__, "results": results}  # fmt: skip


# ----------------------------------------------------------------------------- commands
def register(app: typer.Typer, data_app: typer.Typer) -> None:
    """Add ``denoise``, ``uncertainty`` and ``bench denoise`` to the CLI."""

    @app.command("denoise")
    def denoise_cmd(
        inputs: Annotated[list[Path], typer.Argument(help="Survey FITS files (SDSS spec/spec-lite, DR7 spSpec, DESI coadd).")],
        model: Annotated[str, typer.Option("--model", "-m", help="models:/NAME@ALIAS, models:/NAME/VERSION, runs:/ID or a saved model directory.")] = "models:/specdenoise-vae@champion",
        out: Annotated[Path, typer.Option("--out", "-o", help="Output folder (one FITS per spectrum, summary.json).")] = Path("denoised"),
        add_noise: Annotated[float | None, typer.Option("--add-noise", help="Add Gaussian noise of this sigma (normalised units; paper: 0.04) first; also writes FLUX_CLEAN.")] = None,
        seed: Annotated[int, typer.Option("--seed", help="Seed of the added noise (per spectrum: seed + id).")] = 0,
        scheduler: Annotated[str | None, typer.Option("--scheduler", help="Existing Dask scheduler, tcp://HOST:PORT.")] = None,
        workers: Annotated[int, typer.Option("--workers", "-w", help="Local Dask workers (0 = this process).")] = 2,
        batch_size: Annotated[int, typer.Option("--batch-size", help="Files per Dask task.")] = 8,
        max_masked: Annotated[float, typer.Option("--max-masked", help="Skip spectra whose rest-frame grid is uncovered beyond this fraction.")] = 0.5,
        calibration: Annotated[Path | None, typer.Option("--calibration", help="Calibration file (default: the model's own).")] = None,
        params: ParamsOpt = Path("params.yaml"),
    ) -> None:
        """De-noise survey spectra with a trained model: FITS per spectrum with uncertainty, mask and provenance.

        Exit status 0 when every input succeeded (or was already done), 1 when some inputs were
        bad (listed in the summary; the others are complete), 2 on a usage error (bad --model).
        """
        from specdenoise.config import load_params

        p = load_params(params) if params.exists() or params != Path("params.yaml") else None
        if p is None:
            from specdenoise.config import Params

            p = Params()
        summary = run_batch(list(inputs), out, model, p, calibration, add_noise, seed, workers, scheduler, batch_size, max_masked)
        brief = {k: v for k, v in summary.items() if k != "files"}
        typer.echo(json.dumps(brief, indent=2, default=str))
        log.info("denoise: %d ok, %d skipped (done before), %d bad; %.1f spectra/s -> %s", summary["n_ok"], summary["n_skipped"],
                 summary["n_bad"], summary["spectra_per_s"], out)  # fmt: skip
        for b in summary["bad"]:
            log.warning("skipped: %s", b["error"])
        if summary["n_bad"]:
            raise typer.Exit(1)

    @app.command("uncertainty")
    def uncertainty_cmd(
        params: ParamsOpt = Path("params.yaml"),
        models_dir: Annotated[Path, typer.Option(help="Folder of trained models (<family>_<dim>/model).")] = Path("models"),
        spectra: Annotated[Path, typer.Option("--spectra", help="Preprocessed spectra (.npz).")] = Path("data/processed/spectra.npz"),
        noisy: Annotated[Path, typer.Option("--noisy", help="Noise realisations (.npz).")] = Path("data/processed/noisy.npz"),
        calibration_dir: Annotated[Path, typer.Option(help="Where calibration/<family>_<dim>.json go.")] = Path("calibration"),
        out: Annotated[Path, typer.Option(help="Coverage metrics (JSON).")] = Path("reports/uncertainty.json"),
        out_md: Annotated[Path, typer.Option(help="Coverage table (Markdown).")] = Path("reports/uncertainty.md"),
        tracking: Annotated[bool, typer.Option("--tracking/--no-tracking", help="Log calibration.json and coverage to each model's MLflow run.")] = True,
    ) -> None:
        """Calibrate per-pixel uncertainties on the validation split; measure 1/2-sigma coverage on the test split."""
        from specdenoise.config import load_params
        from specdenoise.io import load_npz, save_json, save_text
        from specdenoise.evaluation.uncertainty import render_markdown, run_uncertainty

        t0 = time.perf_counter()
        p = load_params(params)
        pre = load_npz(spectra, required=("flux", "ivar", "truth", "wave", "split"))
        nz = load_npz(noisy, required=("noisy", "renorm", "sigma"))
        rep = run_uncertainty(p, pre, nz, models_dir, calibration_dir, tracking=tracking)
        save_json(out, rep)
        text = render_markdown(rep)
        save_text(out_md, text)
        log.info("uncertainty done in %.1f s (%d models)", time.perf_counter() - t0, len(rep["models"]))
        typer.echo(text)

    bench = next((g.typer_instance for g in app.registered_groups if g.name == "bench"), None)
    if bench is not None:

        @bench.command("denoise")
        def bench_denoise_cmd(
            inputs: Annotated[list[Path], typer.Argument(help="FITS files to copy into the batch.")],
            model: Annotated[str, typer.Option("--model", "-m", help="Model URI or directory.")] = "models:/specdenoise-vae@champion",
            workers: Annotated[str, typer.Option(help="Comma-separated worker counts.")] = "1,2",
            copies: Annotated[int, typer.Option(help="Copies of each input in the batch.")] = 100,
            batch_size: Annotated[int, typer.Option(help="Files per Dask task.")] = 8,
            params: ParamsOpt = Path("params.yaml"),
            out: Annotated[Path, typer.Option(help="JSON to write.")] = Path("reports/bench_denoise.json"),
        ) -> None:
            """De-noising throughput (spectra/s) with 1 and 2 local Dask workers."""
            from specdenoise.config import Params, load_params
            from specdenoise.errors import ConfigError
            from specdenoise.io import save_json

            try:
                counts = [int(w) for w in workers.split(",")]
            except ValueError:
                raise ConfigError(f"--workers: expected comma-separated integers, got '{workers}'") from None
            if copies <= 0 or any(c <= 0 for c in counts):
                raise ConfigError("--copies and --workers must be positive")
            p = load_params(params) if params.exists() else Params()
            res = bench_denoise(list(inputs), model, p, counts, copies, batch_size)
            save_json(out, res)
            typer.echo(json.dumps(res, indent=2))
