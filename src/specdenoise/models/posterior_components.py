"""The posterior family's mixture components as labels: which component a prior draw came from, and
the posterior probability of each component given a spectrum. Used by the evidence bench
(:mod:`specdenoise.evaluation.posterior_bench_exact`) to ask what a subpopulation's coverage is
when the prior is exact."""

from __future__ import annotations

from typing import Any

import numpy as np

from specdenoise.models.posterior_linalg import one_blas_thread


def sample_prior_labelled(model: Any, n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``model.sample_prior(n, seed)``'s spectra (n, P) and the component (n,) each was drawn from
    (the first draw of the same random stream, as :meth:`sample_prior` makes it)."""
    log_pi = model.arrays["log_pi"]
    pi = np.exp(log_pi - log_pi.max())
    comp = np.random.default_rng(seed).choice(len(pi), n, p=pi / pi.sum())
    return model.sample_prior(n, seed), comp


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
