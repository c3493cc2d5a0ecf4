"""Performance benchmarks (``make bench``): rates measured side by side in one run.

Benchmarks, not tests: they report numbers into ``reports/bench.json`` and never assert a
speed. Peak memory is the resident-set high-water mark of this process (``ru_maxrss``).
"""

from __future__ import annotations

import json
import logging
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from specdenoise.config import Params
from specdenoise.data.artefacts import NoisySet, Observed, Spectra
from specdenoise.data.preprocess import preprocess, rest_grid
from specdenoise.evaluation.linefit import make_fast_fitter
from specdenoise.evaluation.ppxf_fit import PpxfFitter
from specdenoise.models import get_family, load_model
from specdenoise.models.losses import keras_weighted_mse, pixel_weights
from specdenoise.models.neural import build_networks
from specdenoise.sources.observe import observe_noise, sdss_loglam, synthesise_truth
from specdenoise.sources.universe import iter_catalogue
from specdenoise.survey import batch
from specdenoise.survey.readers import read_block
from specdenoise.survey.readers.desi import redshift_file
from specdenoise.survey.synthetic import write_desi_coadd
from specdenoise.survey.targets import prepare_block
from specdenoise.tracking import is_model_uri
from specdenoise.version import __version__

log = logging.getLogger("specdenoise.bench")


def _peak_rss_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2  # Linux: KiB


def bench_universe(params: Params, n: int, chunk_size: int | None = None, progress: bool = False) -> dict[str, Any]:
    """Draw an ``n``-galaxy pool and synthesise every spectrum chunk by chunk (results discarded).

    Returns timings (s), rates (spectra/s) and the peak resident memory (GB).
    """

    cfg = params.universe
    chunk = chunk_size or cfg.chunk_size
    loglam = sdss_loglam()
    t_cat = t_spec = 0.0
    checksum = 0.0
    t0 = time.perf_counter()
    with tqdm(total=n, desc="universe spectra", unit="spec", disable=not progress, leave=False) as bar:
        cats = iter_catalogue(cfg, n=n)
        while True:
            t1 = time.perf_counter()
            cat = next(cats, None)
            t_cat += time.perf_counter() - t1
            if cat is None:
                break
            t1 = time.perf_counter()
            for start in range(0, len(cat), chunk):
                rows = cat.iloc[start : start + chunk]
                truth = synthesise_truth(rows, loglam)
                flux, _ = observe_noise(truth, rows, cfg, loglam)
                checksum += float(np.sum(flux[:, ::97]))
                bar.update(len(rows))
            t_spec += time.perf_counter() - t1
    total = time.perf_counter() - t0
    return {
        "n_galaxies": n,
        "chunk_size": chunk,
        "catalogue_s": round(t_cat, 2),
        "spectra_s": round(t_spec, 2),
        "total_s": round(total, 2),
        "spectra_per_s_end_to_end": round(n / total, 1),
        "peak_rss_gb": round(_peak_rss_gb(), 3),
        "checksum": checksum,
        "machine": {
            "cpu_count": __import__("os").cpu_count(),
            "platform": platform.platform(),
            "python": platform.python_version(),
        },
    }


#: The paper's largest architecture (Table 4, 6-D AE): 825-1000-900-800-800-latent, mirrored.
PAPER_UNITS = [1000, 900, 800, 800]


def time_training(
    family: str, spectra: str, noisy: str, n: int, epochs: int, latent_dim: int = 6, batch_size: int = 64, seed: int = 0
) -> dict[str, Any]:
    """Seconds per epoch of a paper-size model on ``n`` real preprocessed spectra (this backend).

    The first epoch (graph tracing / compilation) is reported separately from the mean of the
    following ones.
    """

    import keras

    pre = Spectra.load(spectra)
    x = NoisySet.load(noisy).noisy[0][:n].astype("float32")
    y = np.concatenate([pre["flux"][:n], pixel_weights(pre["ivar"][:n], 2e-6)], axis=1).astype("float32")
    keras.utils.set_random_seed(seed)
    train, infer, _ = build_networks(
        x.shape[1], latent_dim, PAPER_UNITS, 0.5, get_family(family).variational, seed=seed
    )
    train.compile(optimizer=keras.optimizers.Adam(1e-4), loss=keras_weighted_mse(x.shape[1]))
    times: list[float] = []

    class Timer(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.t = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            times.append(time.perf_counter() - self.t)

    train.fit(x, y, batch_size=batch_size, epochs=epochs, verbose=0, callbacks=[Timer()])
    t0 = time.perf_counter()
    infer.predict(x, batch_size=1024, verbose=0)
    t_inf = time.perf_counter() - t0
    return {
        "backend": keras.backend.backend(),
        "family": family,
        "n_spectra": n,
        "n_parameters": int(train.count_params()),
        "first_epoch_s": round(times[0], 3),
        "seconds_per_epoch": round(float(np.mean(times[1:])) if len(times) > 1 else times[0], 3),
        "inference_spectra_per_s": round(n / t_inf, 1),
        "threads": os.cpu_count(),
    }


def bench_training(
    backends: list[str], families: list[str], spectra: str, noisy: str, n: int, epochs: int
) -> list[dict[str, Any]]:
    """Run :func:`time_training` for each backend in its own process (KERAS_BACKEND is per process)."""

    results = []
    for backend in backends:
        for family in families:
            code = (
                "import json, sys; from specdenoise.evaluation.bench import time_training; "
                f"print('RESULT ' + json.dumps(time_training({family!r}, {spectra!r}, {noisy!r}, {n}, {epochs})))"
            )
            env = dict(os.environ, KERAS_BACKEND=backend, TF_CPP_MIN_LOG_LEVEL="3")
            res = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
            lines = [ln for ln in res.stdout.splitlines() if ln.startswith("RESULT ")]
            if res.returncode != 0 or not lines:
                tail = (res.stderr.strip().splitlines() or ["no output"])[-1]
                results.append({"backend": backend, "family": family, "error": tail[:300]})
                continue
            results.append(json.loads(lines[-1][len("RESULT ") :]))
    return results


def matmul_gflops(n: int = 4096, repeats: int = 3) -> float:
    """Measured dense float32 matmul throughput of this machine (GFLOP/s, best of ``repeats``)."""
    a = np.random.default_rng(0).standard_normal((n, n)).astype(np.float32)
    best = np.inf
    for _ in range(repeats):
        t0 = time.perf_counter()
        a @ a
        best = min(best, time.perf_counter() - t0)
    return 2 * n**3 / best / 1e9


def bench_pipeline(
    params: Params,
    observed_path: str,
    spectra_path: str,
    noisy_path: str,
    model_dir: str | None,
    templates: str | None,
    n_ppxf: int = 20,
) -> dict[str, Any]:
    """Side-by-side rates: preprocessing, inference vs the matmul roofline, fast vs pPXF lines."""

    out: dict[str, Any] = {"matmul_gflops": round(matmul_gflops(), 1)}
    obs = Observed.load(observed_path)
    t0 = time.perf_counter()
    preprocess(obs, params.preprocess)
    out["preprocess_spectra_per_s"] = round(len(obs["flux"]) / (time.perf_counter() - t0), 1)
    pre = Spectra.load(spectra_path)
    x = NoisySet.load(noisy_path).noisy[0]
    if model_dir:
        model = load_model(model_dir)
        model.denoise(x[:64])  # warm-up (graph tracing)
        t0 = time.perf_counter()
        model.denoise(x)
        dt = time.perf_counter() - t0
        rate = len(x) / dt
        flops = 2 * model.n_parameters()  # dense layers: ~2 FLOP per weight per spectrum
        out["inference"] = {
            "model": str(model_dir),
            "spectra_per_s": round(rate, 1),
            "gflops_achieved": round(rate * flops / 1e9, 2),
            "roofline_ratio": round(rate * flops / 1e9 / out["matmul_gflops"], 3),
        }
    if templates:
        edges, wave = rest_grid(params.preprocess)
        fast = make_fast_fitter(templates, edges, params.lines.sigma_kms, params.lines.n_components)
        t0 = time.perf_counter()
        fast(pre["flux"])
        fast_rate = len(pre["flux"]) / (time.perf_counter() - t0)
        slow = PpxfFitter(templates, wave, cache_dir=None, n_jobs=2)
        t0 = time.perf_counter()
        slow(pre["flux"][:n_ppxf])
        ppxf_rate = n_ppxf / (time.perf_counter() - t0)
        out["lines"] = {
            "fast_spectra_per_s": round(fast_rate, 1),
            "ppxf_spectra_per_s": round(ppxf_rate, 2),
            "speedup": round(fast_rate / ppxf_rate, 0),
        }
    return out


def _worker_peak_rss_gb() -> float:
    """Peak resident memory of this process (a Dask worker), GB: ``VmHWM`` of its own address
    space (``ru_maxrss`` can carry the high-water mark of the process that started it)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024**2  # kB
    except OSError:
        pass
    return _peak_rss_gb()


def _model_only(den: Any, path: str, options: dict[str, Any], min_seconds: float = 2.0) -> dict[str, Any]:
    """De-noising rate (with uncertainty) of the model alone on one input's prepared spectra."""
    block = read_block(path)
    _, pre = prepare_block(den, block, options)
    x, ivar, z = pre["flux"].astype(np.float32), pre["ivar"], pre["z"]  # a noise-aware model uses ivar and z
    den.predict(x[:64], ivar[:64], z[:64])  # warm-up
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < min_seconds:
        den.predict(x, ivar, z)
        n += len(x)
    return {"spectra_per_s": round(n / (time.perf_counter() - t0), 1), "batch": len(x)}


def _one_file_in_process(path: str, args: tuple) -> dict[str, Any]:
    """Wall and CPU seconds to read, flag, preprocess, de-noise and write one input in this process
    (model loaded; OMP/BLAS threads as set in this process)."""
    out = Path(args[0]) / "in_process"
    out.mkdir(parents=True, exist_ok=True)
    t0, c0 = time.perf_counter(), time.process_time()
    rec = batch.process_batch([path], str(out), *args[1:])[0]
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    n = rec.get("n_spectra", 0)
    # CPU seconds do not grow when other work shares the cores: n / cpu is the rate of one idle core
    return {
        "seconds": round(wall, 3),
        "cpu_seconds": round(cpu, 3),
        "n_spectra": n,
        "spectra_per_cpu_s": round(n / cpu, 1),
    }


def _inputs(files: list[Path], tmp: Path, copies: int, targets: int) -> list[str]:
    """``copies`` copies of the inputs (or of one ``targets``-target coadd built from them) in ``tmp``."""
    inp = tmp / "in"
    inp.mkdir()
    if targets:
        write_desi_coadd(inp / "coadd-bench.fits", [Path(f) for f in files], n=targets)
        files = [inp / "coadd-bench.fits"]
    paths = []
    for k in range(copies):
        for f in files:
            dst = inp / f"{batch.file_stem(f)}-{k:04d}.fits"
            shutil.copyfile(f, dst)
            rr = redshift_file(Path(f))
            if rr is not None:
                shutil.copyfile(rr, dst.with_name(dst.name.replace("coadd-", "redrock-", 1)))
            paths.append(str(dst))
    return paths


def _run_cluster(n: int, batches: list[list[str]], args: tuple) -> dict[str, Any]:
    from distributed import Client, as_completed

    load_before = os.getloadavg()[0]
    t0 = time.perf_counter()
    cluster = batch.local_cluster(n)
    with Client(cluster) as client:
        client.run(batch.warm, *args[1:5])
        t1 = time.perf_counter()
        futs = [client.submit(batch.process_batch, b, *args, pure=False) for b in batches]
        recs = [r for f in as_completed(futs) for r in f.result()]
        t2 = time.perf_counter()
        rss = client.run(_worker_peak_rss_gb)
    cluster.close()
    n_spec = sum(r.get("n_spectra", 0) for r in recs if r["status"] == "ok")
    return {
        "workers": n,
        "n_files": sum(len(b) for b in batches),
        "n_spectra": n_spec,
        "n_bad": sum(r["status"] == "bad" for r in recs),
        "seconds": round(t2 - t1, 3),
        "spectra_per_s": round(n_spec / (t2 - t1), 1),
        "seconds_end_to_end": round(t2 - t0, 3),
        "worker_peak_rss_gb": round(max(rss.values()), 3) if rss else None,
        "load_avg_1min_before": round(load_before, 2),
    }


def bench_denoise(
    files: list[Path],
    model: str,
    params: Any,
    worker_counts: list[int],
    copies: int,
    batch_size: int,
    root: Path | None = None,
    targets: int = 0,
) -> dict[str, Any]:
    """End-to-end ``denoise`` throughput with 1, 2, ... local Dask workers beside the model-only rate.

    All in one run: the model alone (``Denoiser.predict`` with uncertainty, on one input's
    prepared spectra), one input in this process (read, flag, preprocess, de-noise, write), then
    ``copies`` x ``files`` on each local cluster. With ``targets`` the input is one DESI coadd of
    that many targets built from ``files`` (the real one-target coadds;
    :func:`specdenoise.survey.synthetic.write_desi_coadd`). The model is loaded on every worker
    before timing (``warm``), so the rate is the steady state; the time including cluster
    start-up and model loading, each worker's peak RSS and the load average are reported too.
    """
    root_s = str((root or Path.cwd()).resolve())
    pdict = params.model_dump(by_alias=True)
    model_s = model if is_model_uri(model) else str(Path(model).resolve())
    den = batch.get_denoiser(model_s, pdict, None, root_s)
    options = {"model": model, "add_noise": None, "seed": 0, "calibration": None, **batch.TARGET_OPTIONS}
    with tempfile.TemporaryDirectory(prefix="specdenoise-bench-") as tmp:
        paths = _inputs(files, Path(tmp), copies, targets)
        batches = [paths[i : i + batch_size] for i in range(0, len(paths), batch_size)]
        model_only = _model_only(den, paths[0], options)
        args = (str(Path(tmp) / "out"), model_s, pdict, None, root_s, options)
        one = _one_file_in_process(paths[0], args)
        results = []
        for n in worker_counts:
            results.append(_run_cluster(n, batches, (f"{args[0]}{n}", *args[1:])))
            log.info("bench denoise: %d worker(s): %.1f spectra/s", n, results[-1]["spectra_per_s"])
    base = results[0]["spectra_per_s"] if results else None
    for r in results:
        r["speedup"] = round(r["spectra_per_s"] / base, 2) if base else None
        r["ratio_to_model_only"] = round(r["spectra_per_s"] / model_only["spectra_per_s"], 3)
    return {
        "model": model,
        "family": den.provenance.get("family"),
        "latent_dim": den.provenance.get("latent_dim"),
        "calibrated_sigma": den.calibration is not None,
        "inputs": [str(f) for f in files],
        "targets_per_file": targets or None,
        "copies": copies,
        "batch_size": batch_size,
        "cpu_count": os.cpu_count(),
        "specdenoise": __version__,
        "model_only": model_only,
        "one_file_in_process": one,
        "main_peak_rss_gb": round(_peak_rss_gb(), 3),
        "results": results,
    }
