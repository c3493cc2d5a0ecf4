"""E-MILES SSPs on the common rest-frame grid and the non-negative fit of the fast fitter's continuum.

Kept apart from :mod:`specdenoise.physics.templates` (which builds the template file, a DVC
stage of its own) so that the fitter's use of the templates can change without rebuilding them.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from scipy.ndimage import gaussian_filter1d
from scipy.optimize import nnls

from specdenoise.data.preprocess import resample
from specdenoise.physics.constants import C_KMS
from specdenoise.physics.templates import load_templates


def ssp_grid(
    path: Path,
    edges: np.ndarray,
    sigmas_kms: tuple[float, ...],
    age_step: int = 2,
    metals: tuple[float, ...] = (-0.71, 0.0, 0.22),
    dv_kms: float = 20.0,
) -> np.ndarray:
    """E-MILES SSPs broadened at constant velocity and binned onto a rest-frame grid.

    Every ``age_step``-th age of the library at the [M/H] values ``metals`` (nearest in the
    library) is interpolated onto a log-lambda grid of ``dv_kms`` steps, convolved with a
    Gaussian of each of ``sigmas_kms`` (stellar velocity dispersion; the library's 2.51 A FWHM
    stands in for the instrument, as in the universe), averaged over the bins with ``edges`` (A)
    and normalised to unit L2 norm. Returns (len(sigmas_kms) x n_ssp, n_pix), non-negative.
    """
    t = load_templates(path)
    lam = t["lam"]
    ia = np.arange(0, len(t["ages"]), age_step)
    im = sorted({int(np.argmin(np.abs(t["metals"] - m))) for m in metals})
    flat = t["templates"][:, ia][:, :, im].reshape(len(lam), -1).T  # (n_ssp, n_lam)
    dln = dv_kms / C_KMS
    ln = np.arange(np.log(lam[0]), np.log(lam[-1]), dln)
    fine = np.stack([np.interp(np.exp(ln), lam, f) for f in flat])
    ln_edges = np.exp(np.concatenate([[ln[0] - dln / 2], ln + dln / 2]))
    out = []
    for s in sigmas_kms:
        res, _, _ = resample(edges, ln_edges, gaussian_filter1d(fine, s / dv_kms, axis=1))
        out.append(res / np.linalg.norm(res, axis=1, keepdims=True))
    return np.concatenate(out)


def nnls_fit(
    x: np.ndarray, ssp: np.ndarray, design: tuple, first: int, n_lines: int, var: np.ndarray | None = None
) -> tuple[np.ndarray, ...]:
    """The non-negative continuum fit of ``x`` (n, n_pix) with one entry of
    :func:`specdenoise.evaluation.linefit._nnls_designs` (``F^+, F, Q, R``).

    Returns line fluxes (n, n_lines), their 1-sigma errors (n, n_lines) and a success flag (n,).
    The errors treat the fit as linear on its active set ``A`` (the SSPs with ``w > 0``): the
    line rows are ``L = F_l^+ - (F_l^+ S_A^T) R_A^+ Q^T``; with ``var`` ((n, n_pix) pixel
    variances) the error is ``sqrt(var @ L^2)``, else the residual-scaled white-noise error
    ``sqrt(rss / dof |L|^2)``, ``dof = n_pix - n_free - |A|``.
    """
    pinv, free, q, r = design
    pl = pinv[first : first + n_lines]
    m_all = pl @ ssp.T  # (n_lines, k)
    pl_q = pl @ q  # (n_lines, k)
    gram = r.T @ r
    y = x @ q
    n_pix = x.shape[1]
    w = np.zeros((len(x), r.shape[1]))
    err = np.zeros((len(x), n_lines))
    ok = np.ones(len(x), dtype=bool)
    for i, yi in enumerate(y):
        try:
            w[i] = nnls(r, yi, maxiter=20 * r.shape[1])[0]
        except RuntimeError:  # iteration limit: the caller keeps the linear fit for this spectrum
            ok[i] = False
            continue
        act = w[i] > 0
        r_a = r[:, act]
        try:  # M_A R_A^+ through the (|A|, |A|) normal equations: the active columns are independent
            g = np.linalg.solve(gram[np.ix_(act, act)], m_all[:, act].T).T @ r_a.T  # (n_lines, k)
        except np.linalg.LinAlgError:
            g = m_all[:, act] @ np.linalg.pinv(r_a)
        if var is not None:
            err[i] = np.sqrt(var[i] @ ((pl - g @ q.T) ** 2).T)
        else:
            err[i] = np.sqrt(
                np.clip(np.sum(pl**2, axis=1) - 2 * np.sum(g * pl_q, axis=1) + np.sum(g**2, axis=1), 0, None)
            )
    rest = x - w @ ssp
    coef = rest @ pinv.T
    if var is None:
        rss = np.sum((rest - coef @ free.T) ** 2, axis=1)
        dof = np.maximum(n_pix - free.shape[1] - (w > 0).sum(axis=1), 1)
        err *= np.sqrt(rss / dof)[:, None]
    return coef[:, first : first + n_lines], err, ok
