"""One Gaussian term of the posterior family, batched over spectra: its evidence and latent posterior
at one floor (:func:`evaluate`), or its evidence at every model-mismatch floor at once
(:func:`scan`); the notation is :mod:`.posterior_infer`'s."""

from __future__ import annotations

import numpy as np

from specdenoise.models.posterior_linalg import chol_back_vec, chol_solve_vec, floor_evidence
from specdenoise.models.posterior_prior import Prior


def _tri_solve(chol: np.ndarray, t: np.ndarray, transpose: bool = False) -> np.ndarray:
    """``L^-1 t`` (or ``L^-T t``) batched (a loop over the latent, vectorised over the batch: for the
    latent sizes here much faster than LAPACK's LU-based batched solve)."""
    return chol_back_vec(chol, t) if transpose else chol_solve_vec(chol, t)


def _pixel(pr: Prior, y, iv, slog, s, k: int, f: int) -> tuple[np.ndarray, ...]:
    """Pixel-space pieces of component ``k`` at amplitudes ``s`` (m,) and floor index ``f``:
    ``g``, ``r``, ``g r`` (m, P), ``r^T g r`` and the log determinant of the diagonal part (m,)."""
    den = (s * s)[:, None] * pr.diag(k, f)[None, :]  # a; in place below: 1 + a ivar, then its log
    den *= iv
    den += 1.0
    g = iv / den
    r = s[:, None] * pr.mu[k][None, :]
    np.subtract(y, r, out=r)
    gr = g * r
    quad0 = np.einsum("mp,mp->m", gr, r)
    return g, r, gr, quad0, np.log(den, out=den).sum(axis=1) - slog


def gaussian_term(pz: np.ndarray, t: np.ndarray, quad0, logden, ngood) -> dict[str, np.ndarray]:
    """Evidence and latent posterior from ``P_z - I`` (``pz`` (m, Q, Q), overwritten) and the
    projected data ``t`` (m, Q) (both with the loading's column scales), ``r^T g r`` and the
    diagonal part's log determinant (m,)."""
    q = pz.shape[1]
    pz[:, np.arange(q), np.arange(q)] += 1.0
    chol = np.linalg.cholesky(pz)
    u = _tri_solve(chol, t)
    quad = quad0 - np.einsum("mi,mi->m", u, u)
    logdet = logden + 2.0 * np.log(np.diagonal(chol, axis1=1, axis2=2)).sum(axis=1)
    loglik = -0.5 * (quad + logdet + ngood * np.log(2 * np.pi))
    chi2 = (quad - ngood) / np.sqrt(2.0 * np.maximum(ngood, 1))
    return {"loglik": loglik, "chi2": chi2, "mz": _tri_solve(chol, u, transpose=True), "chol": chol, "u": u}


def evaluate(pr: Prior, y, iv, slog, ngood, s, k: int, f: int, profile=None) -> dict[str, np.ndarray]:
    """Evidence and latent posterior of component ``k`` at floor index ``f`` for rows ``y``, ``iv``
    (m, P) at amplitudes ``s`` (m,); ``slog`` (m,) is the sum of log ivar over unmasked pixels and
    ``ngood`` (m,) their number. Returns ``loglik``, ``chi2`` (m,), ``mz`` (m, Q), ``chol``
    (m, Q, Q) and, given ``profile`` (m, n_scale) amplitudes, the approximate log evidence at each
    of them (quadratic in the amplitude with ``g`` and ``P_z`` held at ``s``: used only to decide
    which components to expand)."""
    g, r, gr, quad0, logden = _pixel(pr, y, iv, slog, s, k, f)
    w, c = pr.loading(k, f)
    pz = pr.gram(k, f, g) * (s * s)[:, None, None]
    if c is not None:
        pz *= np.outer(c, c)[None]
    wc = w if c is None else w * c[None]
    out = gaussian_term(pz, (gr @ wc) * s[:, None], quad0, logden, ngood)
    if profile is not None:  # quadratic profile of quad in the amplitude, g and P_z held (pruning only)
        gm = g * pr.mu[k][None, :]
        v = _tri_solve(out["chol"], (gm @ wc) * s[:, None])
        mmm = np.einsum("mp,p->m", gm, pr.mu[k]) - np.einsum("mi,mi->m", v, v)
        mmr = np.einsum("mp,mp->m", gm, r) - np.einsum("mi,mi->m", v, out["u"])
        ds = profile - s[:, None]  # (m, n_scale) amplitude offsets
        out["profile"] = out["loglik"][:, None] + ds * mmr[:, None] - 0.5 * ds * ds * mmm[:, None]
    return out


def scan(pr: Prior, y, iv, slog, ngood, s, k: int) -> tuple[np.ndarray, tuple]:
    """Log evidence (m, F - 1) of component ``k`` at every floor ``f > 0`` of the grid (arguments as
    :func:`evaluate`; the floor scales the basis columns only, ``dlev = 0``): the pixel-space
    products once, then :func:`.posterior_linalg.floor_evidence` (one tridiagonalisation per
    spectrum instead of a Cholesky factorisation per floor; the same values up to round-off).
    Also returns the pieces :func:`gaussian_term` needs at any floor: ``s^2 W^T diag(g) W`` (m, Q, Q) and
    ``s W^T g r`` (m, Q) of the unscaled loading, ``r^T g r`` and the diagonal log determinant."""
    g, _, gr, quad0, logden = _pixel(pr, y, iv, slog, s, k, 1)
    w, _ = pr.loading(k, 1)
    mat = pr.gram(k, 1, g) * (s * s)[:, None, None]
    t = (gr @ w) * s[:, None]
    logdet, fit = floor_evidence(mat, t, pr.w.shape[2], pr.fgrid[1:])
    lw = -0.5 * ((quad0 + logden + ngood * np.log(2 * np.pi))[:, None] - fit + logdet)
    return lw, (mat, t, quad0, logden)
