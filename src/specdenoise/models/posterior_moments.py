"""The posterior of a batch from its evaluated terms (:func:`.posterior_infer.batch_terms`): the
mixture's mean and sd (:func:`moments`) and draws from it (:func:`draw`), at the input's amplitude or
of the unit-norm spectrum; the notation is :mod:`.posterior_infer`'s."""

from __future__ import annotations

import numpy as np

from specdenoise.models.posterior_infer import MIN_RESP, ROWS, Terms, groups
from specdenoise.models.posterior_linalg import tri_inverse
from specdenoise.models.posterior_prior import Prior


def moments(pr: Prior, y: np.ndarray, iv: np.ndarray, t: Terms, ref: np.ndarray | None = None):
    """Posterior mean and raw sd (n, P) of the mixture of the terms' Gaussians (masked pixels of ``y``
    must be 0): of the clean spectrum at the input's scale, ``s x0``, or given ``ref`` (n,) (a
    typical amplitude per spectrum) of the unit-norm clean spectrum ``x0`` (each term's moments
    divided by its amplitude). Accumulated about ``c = y`` (or ``y / ref``): with ``e_t = m_t - c``
    the mean is ``c + sum w e`` and the variance ``sum w (v + e^2) - (sum w e)^2``;
    ``1 - kappa = 1 / (1 + a ivar)``."""
    n, p = y.shape
    centre = y if ref is None else y / ref[:, None]
    e1 = np.zeros((n, p))
    e2 = np.zeros((n, p))
    use = np.flatnonzero(t.resp > MIN_RESP)
    # the floors f > 0 share the loading [W, B] (their own column scales per term) and, without a
    # per-pixel floor, the diagonal: one group per component and f = 0 / f > 0
    fkey = t.fidx[use] if np.any(pr.dlev) else np.minimum(t.fidx[use], 1)
    for idx in groups(use, t.comp[use] * len(pr.fgrid) + fkey):
        k, f = int(t.comp[idx[0]]), int(t.fidx[idx[0]])
        w_k, c = pr.loading(k, f)
        for lo in range(0, len(idx), ROWS):
            sel = idx[lo : lo + ROWS]
            r, s = t.row[sel], t.s[sel]
            s2 = (s * s)[:, None]
            a = s2 * pr.diag(k, f)[None, :]
            omk = a * iv[r]
            omk += 1.0
            np.reciprocal(omk, out=omk)
            mz, chol = t.latent(sel)
            cs = None if c is None else _scales(pr, t.fidx[sel])
            if cs is not None:
                mz = mz * cs
            e = mz @ w_k.T
            e += pr.mu[k][None, :]
            e *= s[:, None]
            e -= y[r]
            e *= omk
            li = tri_inverse(chol)
            sig = np.matmul(np.swapaxes(li, 1, 2), li)
            if cs is not None:
                sig *= cs[:, :, None] * cs[:, None, :]
            v = pr.gram_diag(k, f, sig)  # diag(W P_z^-1 W^T)
            v *= s2
            v *= omk
            v += a
            v *= omk  # the term's variance: omk (a + omk s^2 diag(W P_z^-1 W^T))
            if ref is not None:  # moments of x0 = x / s about y / ref
                e += y[r]
                e /= s[:, None]
                e -= centre[r]
                v /= s2
            v += e * e
            w = t.resp[sel][:, None]
            _add_rows(e1, e2, r, w * e, w * v)
    return centre + e1, np.sqrt(np.clip(e2 - e1 * e1, 0, None))


def _scales(pr: Prior, fidx: np.ndarray) -> np.ndarray:
    """Column scales (m, Q) of the loading ``[W, B]`` at floor indices ``fidx`` (m,): 1 on ``W``, ``f`` on ``B``."""
    q, big = pr.w.shape[2], pr.wb.shape[2]
    return np.concatenate([np.ones((len(fidx), q)), np.repeat(pr.fgrid[fidx][:, None], big - q, axis=1)], axis=1)


def _add_rows(acc1: np.ndarray, acc2: np.ndarray, r: np.ndarray, v1: np.ndarray, v2: np.ndarray) -> None:
    """``acc[r] += v`` where ``r`` may repeat (a spectrum's terms at several amplitudes): in layers of
    distinct rows (the j-th term of every row in layer j)."""
    order = np.argsort(r, kind="stable")
    first = np.r_[0, np.flatnonzero(np.diff(r[order])) + 1]
    rank = np.empty(len(r), dtype=int)
    rank[order] = np.arange(len(r)) - np.repeat(first, np.diff(np.r_[first, len(r)]))
    for j in range(int(rank.max()) + 1 if len(r) else 0):
        m = rank == j
        acc1[r[m]] += v1[m]
        acc2[r[m]] += v2[m]


def draw(
    pr: Prior, y: np.ndarray, iv: np.ndarray, t: Terms, n_samples: int, rng: np.random.Generator, unit: bool = False
) -> np.ndarray:
    """Raw posterior draws (n_samples, n, P): a term by its weight, then ``z ~ N(m_z, P_z^-1)`` and
    the independent pixel residual; of ``s x0`` (input scale) or, with ``unit``, of ``x0`` (each draw
    divided by its term's amplitude)."""
    n, p = y.shape
    post = np.flatnonzero(t.resp > 0)
    order = post[np.argsort(t.row[post], kind="stable")]
    rows = t.row[order]
    cum = np.cumsum(t.resp[order])
    start = np.searchsorted(rows, np.arange(n), "left")
    end = np.searchsorted(rows, np.arange(n), "right")
    base = np.where(start > 0, cum[np.maximum(start - 1, 0)], 0.0)
    target = base[None, :] + rng.random((n_samples, n)) * (cum[end - 1] - base)[None, :]
    pos = np.clip(np.searchsorted(cum, target), start[None, :], end[None, :] - 1)
    pick = order[pos]  # (n_samples, n) term index
    out = np.empty((n_samples, n, p))
    for term in np.unique(pick):
        si, ni = np.nonzero(pick == term)
        k, f, s = int(t.comp[term]), int(t.fidx[term]), t.s[term]
        w_k, c = pr.loading(k, f)
        q = w_k.shape[1]
        e = rng.standard_normal((len(si), q))
        mz, chol = t.latent(np.array([term]))
        li = tri_inverse(chol)[0]
        z = mz + e @ li  # L^-T e as rows: (L^-T e)^T = e^T L^-1
        if c is not None:
            z = z * c[None]
        a = s * s * pr.diag(k, f)
        kap = a * iv[ni] / (1.0 + a * iv[ni])
        x = (1 - kap) * (s * (pr.mu[k][None] + z @ w_k.T)) + kap * y[ni]
        x += np.sqrt(a * (1 - kap)) * rng.standard_normal((len(si), p))
        out[si, ni] = x / s if unit else x
    return out
