"""The posterior family's prior arranged for batched inference: the per-pixel outer products of the
loadings, the structured model-mismatch basis, and small batched triangular solves.

The mismatch basis ``B_k`` (:func:`mismatch_basis`) holds what real galaxy spectra have and a
finite universe prior may lack: a smooth multiplicative distortion of the component mean
(flux calibration, dust, template shape: Legendre orders in log wavelength) and free amplitudes of
the strong emission lines and stellar absorption features at their rest wavelengths. At floor
``f`` its columns enter the loading as ``f B_k`` (prior sd ``f`` in units of the columns), so they
can absorb structure but not white noise (``m`` columns cost ``m`` degrees of freedom of 825).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: rest wavelengths (A) of the emission lines given a free amplitude in the mismatch basis
MISMATCH_LINES = (
    3727.1,
    3729.9,
    3868.8,
    3889.0,
    3967.5,
    4101.7,
    4340.5,
    4471.5,
    4685.7,
    4861.3,
    4958.9,
    5006.8,
    5875.6,
    6300.3,
    6363.8,
    6548.1,
    6562.8,
    6583.5,
    6678.2,
    6716.4,
    6730.8,
    7065.2,
    7135.8,
    7320.0,
    7330.0,
)
#: rest wavelengths (A) of stellar absorption features given a free depth (sigma = 2 bins)
MISMATCH_ABSORPTION = (3933.7, 3968.5, 4304.4, 5175.4, 5269.0, 5892.9, 8498.0)
N_LEGENDRE = 24
LINE_SCALE = 10.0  # a line column's peak, in units of the rms pixel of a unit-norm spectrum


def mismatch_basis(mu: np.ndarray, wave: np.ndarray) -> np.ndarray:
    """The structured model-mismatch loading ``B_k`` (K, P, m) at unit floor: a smooth multiplicative
    distortion ``mu_k L_l(x)`` (Legendre orders 0..N_LEGENDRE-1, ``x`` linear in log wavelength over
    the grid) and a free Gaussian line (sigma = 1 bin, peak ``LINE_SCALE / sqrt(P)``) at each of
    :data:`MISMATCH_LINES` on the grid."""
    k, p = mu.shape
    x = np.linspace(-1.0, 1.0, p)
    leg = np.stack([np.polynomial.legendre.Legendre.basis(i)(x) for i in range(N_LEGENDRE)], axis=1)
    pix = np.arange(p)
    cols = []
    logw = np.log(wave) if wave is not None else None
    for lam in MISMATCH_LINES if wave is not None else ():
        if logw[0] < np.log(lam) < logw[-1]:
            c = np.interp(np.log(lam), logw, pix)
            cols.append(np.exp(-0.5 * (pix - c) ** 2) * LINE_SCALE / np.sqrt(p))
    for lam in MISMATCH_ABSORPTION if wave is not None else ():
        if logw[0] < np.log(lam) < logw[-1]:
            c = np.interp(np.log(lam), logw, pix)
            cols.append(np.exp(-0.5 * ((pix - c) / 2.0) ** 2) * LINE_SCALE / np.sqrt(p))
    lines = np.stack(cols, axis=1) if cols else np.zeros((p, 0))
    return np.concatenate([mu[:, :, None] * leg[None], np.broadcast_to(lines, (k, *lines.shape))], axis=2)


@dataclass
class Prior:
    """The prior arranged for batched inference (built once per model by :func:`prepare`). At floor
    ``f`` component ``k``'s loading is ``[W_k, f B_k]``; ``f = 0`` uses ``W_k`` alone."""

    mu: np.ndarray  # (K, P)
    w: np.ndarray  # (K, P, q)
    ww: np.ndarray  # (K, P, q*q) per-pixel outer products of the loading rows
    wb: np.ndarray  # (K, P, q+m) the loading with the mismatch basis at unit floor
    wwb: np.ndarray  # (K, P, (q+m)^2) its per-pixel outer products
    d: np.ndarray  # (K, P) diagonal variance
    dlev: np.ndarray  # (K, P) per-pixel variance added at unit floor (0: the floor is the basis alone)
    log_pi: np.ndarray  # (K,)
    fgrid: np.ndarray  # (F,) mismatch floors, fgrid[0] = 0
    log_pf: np.ndarray  # (F,) their prior

    def diag(self, k: int, f: int) -> np.ndarray:
        """Diagonal prior variance (P,) of component ``k`` at floor index ``f``."""
        return self.d[k] if f == 0 else self.d[k] + self.fgrid[f] ** 2 * self.dlev[k]

    def loading(self, k: int, f: int) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """``(W, WW, c)`` of component ``k`` at floor index ``f``: the loading is ``W * c`` (columns
        scaled by ``c``; ``None``: unscaled)."""
        if f == 0 or self.wb is self.w:
            return self.w[k], self.ww[k], None
        q = self.w.shape[2]
        c = np.concatenate([np.ones(q), np.full(self.wb.shape[2] - q, self.fgrid[f])])
        return self.wb[k], self.wwb[k], c


def prepare(arrays: dict, wave: np.ndarray | None, mismatch=(0.0,), log_pf=None, kind: str = "basis") -> Prior:
    """Precompute :class:`Prior` from the model's arrays and rest wavelengths ``wave`` (P,; None: no
    line columns). ``kind``: the mismatch at floor ``f`` is the structured basis ``f B_k``
    (``basis``), a per-pixel variance ``(f mu_k)^2`` (``diag``) or both."""
    mu, w, d = arrays["mu"], arrays["w"], arrays["d"]
    k, p, q = w.shape
    ww = np.einsum("kpi,kpj->kpij", w, w).reshape(k, p, q * q)
    f = np.asarray(mismatch, dtype=float)
    if len(f) > 1 and kind in ("basis", "both"):
        wb = np.ascontiguousarray(np.concatenate([w, mismatch_basis(mu, wave)], axis=2))
        m = wb.shape[2]
        wwb = np.einsum("kpi,kpj->kpij", wb, wb).reshape(k, p, m * m)
    else:
        wb, wwb = w, ww
    lpf = np.zeros(len(f)) if log_pf is None else np.asarray(log_pf, dtype=float)
    dlev = mu**2 if kind in ("diag", "both") else np.zeros_like(mu)
    return Prior(mu, w, np.ascontiguousarray(ww), wb, np.ascontiguousarray(wwb), d, dlev, arrays["log_pi"], f, lpf)


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
    """``L^-1`` of lower-triangular ``chol`` (m, q, q), vectorised over m."""
    m, q, _ = chol.shape
    inv = np.zeros_like(chol)
    for i in range(q):
        acc = -np.einsum("mj,mjk->mk", chol[:, i, :i], inv[:, :i, :])
        acc[:, i] += 1.0
        inv[:, i, :] = acc / chol[:, i, i, None]
    return inv
