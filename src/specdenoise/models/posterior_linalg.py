"""Small batched linear algebra of the posterior family's inference: triangular solves and inverses
vectorised over a batch of small factors, and the evidence of one Gaussian term at every
model-mismatch floor from one tridiagonalisation (:func:`floor_evidence`)."""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy.linalg.lapack import dsytrd
from threadpoolctl import ThreadpoolController

_BLAS: list[ThreadpoolController] = []  # created on first use (it inspects the loaded libraries)
#: factors at most this size are inverted row by row; larger ones by 2 x 2 blocks
_TRI_BLOCK = 16


def one_blas_thread() -> Any:
    """Context manager holding BLAS to one thread. The inference is many small products (batches of
    128 spectra, latents of 6-61), where BLAS threads add only synchronisation: one 500-target DESI
    coadd took 7.7 CPU-s with 2 BLAS threads on a busy 2-core machine and 0.66 CPU-s with one.
    Parallelism comes from worker processes instead."""
    if not _BLAS:
        _BLAS.append(ThreadpoolController())
    return _BLAS[0].limit(limits=1, user_api="blas")


def chol_solve_vec(chol: np.ndarray, t: np.ndarray) -> np.ndarray:
    """``L^-1 t`` for lower-triangular ``chol`` (m, q, q) and ``t`` (m, q), vectorised over m."""
    q = t.shape[1]
    u = np.empty_like(t)
    for i in range(q):
        u[:, i] = (t[:, i] - np.einsum("mj,mj->m", chol[:, i, :i], u[:, :i])) / chol[:, i, i]
    return u


def chol_back_vec(chol: np.ndarray, u: np.ndarray) -> np.ndarray:
    """``L^-T u`` for lower-triangular ``chol`` (m, q, q) and ``u`` (m, q)."""
    q = u.shape[1]
    x = np.empty_like(u)
    for i in range(q - 1, -1, -1):
        x[:, i] = (u[:, i] - np.einsum("mj,mj->m", chol[:, i + 1 :, i], x[:, i + 1 :])) / chol[:, i, i]
    return x


def tri_inverse(chol: np.ndarray) -> np.ndarray:
    """``L^-1`` of lower-triangular ``chol`` (m, q, q), vectorised over m (2 x 2 blocks above
    :data:`_TRI_BLOCK`: ``[[A, 0], [C, D]]^-1 = [[A^-1, 0], [-D^-1 C A^-1, D^-1]]``)."""
    m, q, _ = chol.shape
    inv = np.zeros_like(chol)
    if q > _TRI_BLOCK:
        h = q // 2
        a, d = tri_inverse(chol[:, :h, :h]), tri_inverse(chol[:, h:, h:])
        inv[:, :h, :h], inv[:, h:, h:] = a, d
        inv[:, h:, :h] = -np.matmul(d, np.matmul(chol[:, h:, :h], a))
        return inv
    for i in range(q):
        acc = -np.einsum("mj,mjk->mk", chol[:, i, :i], inv[:, :i, :])
        acc[:, i] += 1.0
        inv[:, i, :] = acc / chol[:, i, i, None]
    return inv


def floor_evidence(mat: np.ndarray, t: np.ndarray, q: int, floors: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``log det P_f`` and ``t_f^T P_f^-1 t_f`` (n, F) at every floor ``f`` of ``floors`` (F,), where
    ``P_f = I + (c c^T) * mat`` and ``t_f = c * t`` with ``c = [1 (q), f (Q - q)]``: the latent
    precision and projected data of a term whose last ``Q - q`` loading columns are scaled by ``f``;
    ``mat`` (n, Q, Q) symmetric positive semi-definite, ``t`` (n, Q).

    With the Schur complement ``S = M22 - M21 P11^-1 M12`` (``P11 = I + M11``) and
    ``h = t2 - M21 P11^-1 t1``: ``log det P_f = log det P11 + log det(I + f^2 S)`` and
    ``t_f^T P_f^-1 t_f = t1^T P11^-1 t1 + f^2 h^T (I + f^2 S)^-1 h``. One Householder
    tridiagonalisation of the bordered ``[[0, h^T], [h, S]]`` gives ``S = V T V^T`` with
    ``V^T h = |h| e_1``, so every floor costs one O(Q) recurrence (the pivots of
    ``I + f^2 T`` from the bottom: their logs sum to the log determinant and the first is
    ``1 / [(I + f^2 T)^-1]_11``) instead of a Cholesky factorisation."""
    n, big, _ = mat.shape
    m = big - q
    p11 = mat[:, :q, :q] + np.eye(q)
    sol = np.linalg.solve(p11, np.concatenate([mat[:, :q, q:], t[:, :q, None]], axis=2))  # (n, q, m + 1)
    schur = mat[:, q:, q:] - np.matmul(mat[:, q:, :q], sol[:, :, :m])
    h = t[:, q:] - np.einsum("nji,ni->nj", mat[:, q:, :q], sol[:, :, m])
    base_ld = 2.0 * np.log(np.diagonal(np.linalg.cholesky(p11), axis1=1, axis2=2)).sum(axis=1)
    base_q = np.einsum("ni,ni->n", t[:, :q], sol[:, :, m])
    beta = np.linalg.norm(h, axis=1)
    unit = h / np.where(beta > 0, beta, 1.0)[:, None]
    diag, off = np.empty((n, m)), np.empty((n, m - 1))
    border = np.zeros((m + 1, m + 1))
    for i in range(n):
        border[1:, 1:] = schur[i]
        border[1:, 0] = unit[i]
        _, d, e, _, _ = dsytrd(border, lower=1)
        diag[i], off[i] = d[1:], e[1:]
    f2 = np.asarray(floors, dtype=float)[None, :] ** 2
    piv = 1.0 + f2 * diag[:, m - 1, None]
    logdet = np.log(piv)
    for j in range(m - 2, -1, -1):
        piv = 1.0 + f2 * diag[:, j, None] - (f2 * off[:, j, None]) ** 2 / piv
        logdet += np.log(piv)
    return base_ld[:, None] + logdet, base_q[:, None] + f2 * (beta * beta)[:, None] / piv
