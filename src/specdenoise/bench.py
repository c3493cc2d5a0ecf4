"""Performance benchmarks (``make bench``): rates measured side by side in one run.

Benchmarks, not tests: they report numbers into ``reports/bench.json`` and never assert a
speed. Peak memory is the resident-set high-water mark of this process (``ru_maxrss``).
"""

from __future__ import annotations

import platform
import resource
import time
from typing import Any

import numpy as np

from .config import Params


def _peak_rss_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2  # Linux: KiB


def bench_universe(params: Params, n: int, chunk_size: int | None = None, progress: bool = False) -> dict[str, Any]:
    """Draw an ``n``-galaxy pool and synthesise every spectrum chunk by chunk (results discarded).

    Returns timings (s), rates (spectra/s) and the peak resident memory (GB).
    """
    from tqdm.auto import tqdm

    from .observe import observe_noise, sdss_loglam, synthesise_truth
    from .universe import iter_catalogue

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
        "machine": {"cpu_count": __import__("os").cpu_count(), "platform": platform.platform(), "python": platform.python_version()},
    }
