"""The posterior family's mixture components as labels: the posterior probability of each component
given a spectrum (the component a prior draw came from: ``sample_prior(n, seed, labels=True)``).
Used by the evidence bench (:mod:`specdenoise.evaluation.posterior_bench_exact`) to ask what a
subpopulation's coverage is when the prior is exact."""

from __future__ import annotations

from typing import Any

import numpy as np

from specdenoise.models.posterior_linalg import one_blas_thread


def component_probabilities(model: Any, x: np.ndarray, ivar: np.ndarray | None = None, batch: int = 256) -> np.ndarray:
    """Posterior probability (n, K) of each of the model's K prior components given spectra ``x``
    (n, P) with inverse variance ``ivar``: the responsibilities of the inference's kept terms summed
    over amplitude and mismatch floor."""
    out = []
    with one_blas_thread():
        for _, xb, ib in model._batches(x, ivar, batch):
            t = model._terms(xb, ib)
            r = np.zeros((len(xb), len(model.arrays["mu"])))
            np.add.at(r, (t.row, t.comp), t.resp)
            out.append(r)
    return np.concatenate(out)
