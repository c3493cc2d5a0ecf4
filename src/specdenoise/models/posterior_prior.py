"""The posterior family's prior arranged for batched inference: the per-pixel outer products of the
loadings, the structured model-mismatch basis, and small batched triangular solves.

The mismatch basis ``B_k`` (:func:`mismatch_basis`) holds what real galaxy spectra have and a
finite universe prior may lack: a smooth multiplicative distortion of the component mean
(flux calibration, dust, template shape: Legendre orders in log wavelength), free amplitudes of
the emission lines, shifts and broad components of the strongest (a real line's centre and width,
not only its strength, can differ from the universe's) and free depths of stellar absorption features at
their rest wavelengths. At floor
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
#: the strongest lines of :data:`MISMATCH_LINES` ([OII], H-beta, [OIII], [NII], H-alpha, [SII]), which
#: also get a shift and a broad column: 10 lines, not all 27, because every column costs the floor
#: scan O(m^2) per spectrum and its reduction O(m^3) (the basis has m = 24 + 27 + 2 x 10 + 7 columns)
SHAPE_LINES = (3727.1, 3729.9, 4861.3, 4958.9, 5006.8, 6548.1, 6562.8, 6583.5, 6716.4, 6730.8)
N_LEGENDRE = 24
LINE_SCALE = 10.0  # a line column's peak, in units of the rms pixel of a unit-norm spectrum


#: a line / feature column is set to 0 beyond this many of its sigmas (its value there < 3e-20 of the peak)
LOCAL_CUT = 9.3


def _pairs(w: np.ndarray) -> np.ndarray:
    """Per-pixel products ``W_i W_j`` (K, P, q(q+1)/2) over the upper triangle ``i <= j`` (the
    symmetric rest is filled by :func:`_fill_sym`)."""
    iu, ju = np.triu_indices(w.shape[2])
    return np.ascontiguousarray(w[:, :, iu] * w[:, :, ju])


def _fill_sym(out: np.ndarray, tri: np.ndarray, q: int) -> None:
    """Write the upper-triangle values ``tri`` (n, q(q+1)/2) and their mirror into ``out[:, :q, :q]``."""
    iu, ju = np.triu_indices(q)
    out[:, iu, ju] = tri
    out[:, ju, iu] = tri


def _sym_weights(sig: np.ndarray, q: int) -> np.ndarray:
    """The upper triangle (n, q(q+1)/2) of symmetric ``sig[:, :q, :q]`` with the off-diagonal
    entries doubled, so that ``_sym_weights(S) @ _pairs(W).T = diag(W S W^T)``."""
    iu, ju = np.triu_indices(q)
    return sig[:, iu, ju] * np.where(iu == ju, 1.0, 2.0)[None, :]


#: width (bins) of each emission line's broad column in the mismatch basis (its shape: a wider line)
BROAD_SIGMA = 2.5


def _gauss_columns(wave: np.ndarray, p: int, lines, sig: float, shift: bool = False) -> list[np.ndarray]:
    """A Gaussian column (sigma ``sig`` bins; with ``shift`` its derivative, a shift of the line)
    at each of ``lines`` (rest A) on the grid, peak ``LINE_SCALE / sqrt(P)``, 0 beyond LOCAL_CUT."""
    pix, logw, cols = np.arange(p), np.log(wave), []
    for lam in lines:
        if logw[0] < np.log(lam) < logw[-1]:
            dx = (pix - np.interp(np.log(lam), logw, pix)) / sig
            col = np.where(np.abs(dx) <= LOCAL_CUT, np.exp(-0.5 * dx * dx), 0.0) * LINE_SCALE / np.sqrt(p)
            cols.append(dx * col if shift else col)
    return cols


def _local_columns(wave: np.ndarray | None, p: int) -> np.ndarray:
    """The local columns of the mismatch basis (P, n_local): per emission line of
    :data:`MISMATCH_LINES` its amplitude (sigma = 1 bin); per line of :data:`SHAPE_LINES` also its
    shift (the derivative) and a broad component (sigma = :data:`BROAD_SIGMA` bins), so that a real
    line whose centre or width the prior lacks can pass; per feature of :data:`MISMATCH_ABSORPTION`
    its depth (sigma = 2 bins)."""
    if wave is None:
        return np.zeros((p, 0))
    cols = _gauss_columns(wave, p, MISMATCH_LINES, 1.0)
    cols += _gauss_columns(wave, p, SHAPE_LINES, 1.0, shift=True)
    cols += _gauss_columns(wave, p, SHAPE_LINES, BROAD_SIGMA)
    cols += _gauss_columns(wave, p, MISMATCH_ABSORPTION, 2.0)
    return np.stack(cols, axis=1) if cols else np.zeros((p, 0))


def _legendre(p: int, n: int) -> np.ndarray:
    """Legendre polynomials of orders 0..n-1 at ``x`` linear over the grid, (P, n)."""
    x = np.linspace(-1.0, 1.0, p)
    return np.stack([np.polynomial.legendre.Legendre.basis(i)(x) for i in range(n)], axis=1)


def mismatch_basis(mu: np.ndarray, wave: np.ndarray) -> np.ndarray:
    """The structured model-mismatch loading ``B_k`` (K, P, m) at unit floor: a smooth multiplicative
    distortion ``mu_k L_l(x)`` (Legendre orders 0..N_LEGENDRE-1, ``x`` linear in log wavelength over
    the grid), at each of :data:`MISMATCH_LINES` on the grid a free Gaussian line (sigma = 1 bin,
    peak ``LINE_SCALE / sqrt(P)``), for the strongest its shift and a broad line (:func:`_local_columns`), and an
    absorption feature (sigma = 2 bins) at each of :data:`MISMATCH_ABSORPTION`; the local columns
    are 0 beyond :data:`LOCAL_CUT` sigmas."""
    k, p = mu.shape
    lines = _local_columns(wave, p)
    return np.concatenate(
        [mu[:, :, None] * _legendre(p, N_LEGENDRE)[None], np.broadcast_to(lines, (k, *lines.shape))], axis=2
    )


@dataclass
class BasisGram:
    """The per-pixel outer products of the loading ``X_k = [W_k, mu_k L, Bloc]`` (q + n_leg + n_loc
    columns: the factor loading, the Legendre distortion, the local line / feature columns) in
    structured form, for ``X^T diag(g) X`` (:meth:`gram`) and ``diag(X S X^T)`` (:meth:`diag`)
    without the dense (P, Q^2) table: the Legendre-Legendre products ``L_i L_j`` are the Legendre
    series ``sum_l lin[l, ij] L_l`` (degree < 2 n_leg - 1, exact), and a local column is non-zero
    only in its window of ``width`` pixels from ``lo``. Same values as the dense products up to
    float round-off (tested against them)."""

    pair: np.ndarray  # (K, P, q(q+1)/2 + q*n_leg + n_lin): W_i W_j (i <= j), W_i mu L_j, mu^2 L_l
    lin: np.ndarray  # (n_lin, n_leg^2) Legendre linearisation coefficients
    lo: np.ndarray  # (n_loc,) first pixel of each local column's window
    width: int
    loc: np.ndarray  # (K, n_loc, width, Q): b_j(p) X_k[p, :] over the window of column j
    q: int
    n_leg: int

    def gram(self, k: int, g: np.ndarray) -> np.ndarray:
        """``X_k^T diag(g) X_k`` (n, Q, Q) for weights ``g`` (n, P)."""
        n, q, nl = len(g), self.q, self.n_leg
        big = self.loc.shape[3]
        dense = g @ self.pair[k]
        t = q * (q + 1) // 2
        out = np.empty((n, big, big))
        _fill_sym(out, dense[:, :t], q)
        wl = dense[:, t : t + q * nl].reshape(n, q, nl)
        out[:, :q, q : q + nl] = wl
        out[:, q : q + nl, :q] = wl.transpose(0, 2, 1)
        out[:, q : q + nl, q : q + nl] = (dense[:, t + q * nl :] @ self.lin).reshape(n, nl, nl)
        if len(self.lo):
            win = g[:, self.lo[:, None] + np.arange(self.width)]  # (n, n_loc, width)
            loc = np.matmul(win.transpose(1, 0, 2), self.loc[k]).transpose(1, 2, 0)  # (n, Q, n_loc)
            out[:, :, q + nl :] = loc
            out[:, q + nl :, : q + nl] = loc[:, : q + nl].transpose(0, 2, 1)
        return out

    def diag(self, k: int, sig: np.ndarray) -> np.ndarray:
        """``diag(X_k S X_k^T)`` (n, P) for symmetric ``sig`` (n, Q, Q)."""
        n, q, nl = len(sig), self.q, self.n_leg
        ll = sig[:, q : q + nl, q : q + nl].reshape(n, nl * nl) @ self.lin.T
        v = np.concatenate([_sym_weights(sig, q), 2.0 * sig[:, :q, q : q + nl].reshape(n, q * nl), ll], 1)
        out = v @ self.pair[k].T
        if len(self.lo):
            wts = np.where(np.arange(sig.shape[1]) < q + nl, 2.0, 1.0)  # cross terms with the dense columns twice
            z = (sig[:, :, q + nl :] * wts[None, :, None]).transpose(2, 1, 0)  # (n_loc, Q, n)
            vals = np.matmul(self.loc[k], z)  # (n_loc, width, n)
            for j, lo in enumerate(self.lo):
                out[:, lo : lo + self.width] += vals[j].T
        return out


def basis_gram(w: np.ndarray, mu: np.ndarray, wave: np.ndarray | None) -> BasisGram:
    """:class:`BasisGram` of the loadings ``[W_k, B_k]`` (``B_k``: :func:`mismatch_basis`)."""
    k, p, q = w.shape
    nl = N_LEGENDRE
    leg, legs = _legendre(p, nl), _legendre(p, 2 * nl - 1)
    lin = np.zeros((2 * nl - 1, nl * nl))
    for i in range(nl):
        for j in range(nl):
            c = np.polynomial.legendre.legmul(np.eye(nl)[i], np.eye(nl)[j])
            lin[: len(c), i * nl + j] = c
    wl = np.einsum("kpi,kp,pj->kpij", w, mu, leg).reshape(k, p, q * nl)
    pair = np.concatenate([_pairs(w), wl, mu[:, :, None] ** 2 * legs], 2)
    local = _local_columns(wave, p)
    nz = [np.flatnonzero(local[:, j]) for j in range(local.shape[1])]
    width = max((int(z[-1] - z[0] + 1) for z in nz), default=1)
    lo = np.array([min(int(z[0]), p - width) for z in nz], dtype=int)
    xk = np.concatenate([w, mu[:, :, None] * leg[None], np.broadcast_to(local, (k, *local.shape))], 2)
    win = lo[:, None] + np.arange(width)  # (n_loc, width)
    loc = local[win, np.arange(len(lo))[:, None]][None, :, :, None] * xk[:, win, :]
    return BasisGram(np.ascontiguousarray(pair), lin, lo, width, np.ascontiguousarray(loc), q, nl)


@dataclass
class Prior:
    """The prior arranged for batched inference (built once per model by :func:`prepare`). At floor
    ``f`` component ``k``'s loading is ``[W_k, f B_k]``; ``f = 0`` uses ``W_k`` alone."""

    mu: np.ndarray  # (K, P)
    w: np.ndarray  # (K, P, q)
    ww: np.ndarray  # (K, P, q(q+1)/2) per-pixel products W_i W_j of the loading rows, i <= j
    wb: np.ndarray  # (K, P, q+m) the loading with the mismatch basis at unit floor
    basis: BasisGram | None  # its per-pixel outer products, structured (None: no basis)
    d: np.ndarray  # (K, P) diagonal variance
    dlev: np.ndarray  # (K, P) per-pixel variance added at unit floor (0: the floor is the basis alone)
    log_pi: np.ndarray  # (K,)
    fgrid: np.ndarray  # (F,) mismatch floors, fgrid[0] = 0
    log_pf: np.ndarray  # (F,) their prior

    def diag(self, k: int, f: int) -> np.ndarray:
        """Diagonal prior variance (P,) of component ``k`` at floor index ``f``."""
        return self.d[k] if f == 0 else self.d[k] + self.fgrid[f] ** 2 * self.dlev[k]

    def loading(self, k: int, f: int) -> tuple[np.ndarray, np.ndarray | None]:
        """``(W, c)`` of component ``k`` at floor index ``f``: the loading is ``W * c`` (columns
        scaled by ``c``; ``None``: unscaled, the factor loading alone)."""
        if f == 0 or self.basis is None:
            return self.w[k], None
        q = self.w.shape[2]
        return self.wb[k], np.concatenate([np.ones(q), np.full(self.wb.shape[2] - q, self.fgrid[f])])

    def gram(self, k: int, f: int, g: np.ndarray) -> np.ndarray:
        """``W^T diag(g) W`` (n, Q, Q) of the unscaled loading ``W`` of :meth:`loading`, ``g`` (n, P)."""
        if f == 0 or self.basis is None:
            q = self.w.shape[2]
            out = np.empty((len(g), q, q))
            _fill_sym(out, g @ self.ww[k], q)
            return out
        return self.basis.gram(k, g)

    def gram_diag(self, k: int, f: int, sig: np.ndarray) -> np.ndarray:
        """``diag(W S W^T)`` (n, P) of the unscaled loading ``W`` of :meth:`loading`, ``sig`` (n, Q, Q)."""
        if f == 0 or self.basis is None:
            return _sym_weights(sig, self.w.shape[2]) @ self.ww[k].T
        return self.basis.diag(k, sig)


def prepare(arrays: dict, wave: np.ndarray | None, mismatch=(0.0,), log_pf=None, kind: str = "basis") -> Prior:
    """Precompute :class:`Prior` from the model's arrays and rest wavelengths ``wave`` (P,; None: no
    line columns). ``kind``: the mismatch at floor ``f`` is the structured basis ``f B_k``
    (``basis``), a per-pixel variance ``(f mu_k)^2`` (``diag``) or both."""
    mu, w, d = arrays["mu"], arrays["w"], arrays["d"]
    ww = _pairs(w)
    f = np.asarray(mismatch, dtype=float)
    wb, basis = w, None
    if len(f) > 1 and kind in ("basis", "both"):
        wb = np.ascontiguousarray(np.concatenate([w, mismatch_basis(mu, wave)], axis=2))
        basis = basis_gram(w, mu, wave)
    lpf = np.zeros(len(f)) if log_pf is None else np.asarray(log_pf, dtype=float)
    dlev = mu**2 if kind in ("diag", "both") else np.zeros_like(mu)
    return Prior(mu, w, ww, wb, basis, d, dlev, arrays["log_pi"], f, lpf)
