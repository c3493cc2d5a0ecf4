"""The fast paths of the posterior family's mismatch floor against the straightforward computation:
the structured Gram of ``[W, B]`` against the dense per-pixel outer products, the one-
tridiagonalisation floor evidence against a Cholesky factorisation per floor and against the dense
Gaussian evidence, the blocked triangular inverse, and the batched terms at the chosen floor."""

from __future__ import annotations

import numpy as np
import pytest

from specdenoise.models import posterior_infer as infer
from specdenoise.models.posterior import PosteriorDenoiser
from specdenoise.models.posterior_eval import evaluate, scan
from specdenoise.models.posterior_linalg import floor_evidence, tri_inverse
from specdenoise.models.posterior_prior import basis_gram, mismatch_basis, prepare

P, Q = 825, 4
GRID = [0.0, 0.003, 0.01, 0.03, 0.1, 0.3, 1.0]


def _model(k: int = 2, seed: int = 3) -> tuple[PosteriorDenoiser, np.ndarray]:
    rng = np.random.default_rng(seed)
    wave = np.geomspace(3700.0, 7900.0, P)
    mu = 1.0 + 0.2 * np.sin(np.arange(P)[None] / (7.0 + 3 * np.arange(k)[:, None])) + 0.05 * rng.random((k, P))
    mu /= np.linalg.norm(mu, axis=1, keepdims=True)
    w = 0.01 * rng.standard_normal((k, P, Q))
    d = np.full((k, P), 1e-7) * (1 + rng.random((k, P)))
    m = PosteriorDenoiser(Q, {"n_scale": 3, "mismatch": GRID, "mismatch_p0": 0.9})
    m.set_prior(mu, w, d, np.log(rng.random(k) + 0.5))
    m.arrays["wave"] = wave
    return m, wave


def _spectra(m: PosteriorDenoiser, wave: np.ndarray, n: int = 4, seed: int = 5):
    """Draws of component 0 with a tilt, an H-alpha line and a masked gap the prior lacks."""
    rng = np.random.default_rng(seed)
    a = m.arrays
    x = a["mu"][0] + rng.standard_normal((n, Q)) @ a["w"][0].T
    pix = np.arange(P)
    line = np.exp(-0.5 * (pix - np.interp(np.log(6562.8), np.log(wave), pix)) ** 2)
    x = x * (1 + 0.05 * rng.standard_normal((n, 1)) * np.linspace(-1, 1, P)) + 0.01 * rng.random((n, 1)) * line
    sigma = a["mu"][0].mean() / np.array([5.0, 30.0, 80.0, 200.0])[:n, None]
    ivar = np.broadcast_to(sigma**-2, (n, P)).copy()
    ivar[:, 300:320] = 0.0
    y = 1.05 * x + sigma * rng.standard_normal((n, P))
    return np.where(ivar > 0, y, 0.0), ivar


def test_structured_gram_equals_the_dense_outer_products():
    """X^T diag(g) X and diag(X S X^T) of the loading [W, B] (Legendre distortion and local line
    columns), with zero weights (masked pixels), against the dense (P, Q^2) products."""
    m, wave = _model(k=3)
    a = m.arrays
    rng = np.random.default_rng(0)
    x = np.concatenate([a["w"], mismatch_basis(a["mu"], wave)], axis=2)
    bg = basis_gram(a["w"], a["mu"], wave)
    g = rng.random((5, P)) * 10.0 ** rng.uniform(0, 6, (5, 1))
    g[:, 100:140] = 0.0
    for k in range(3):
        ref = np.einsum("np,pi,pj->nij", g, x[k], x[k])
        np.testing.assert_allclose(bg.gram(k, g), ref, rtol=0, atol=1e-13 * np.abs(ref).max())
        half = rng.standard_normal((5, x.shape[2], x.shape[2]))
        s = half @ np.swapaxes(half, 1, 2)
        ref_d = np.einsum("pi,nij,pj->np", x[k], s, x[k])
        np.testing.assert_allclose(bg.diag(k, s), ref_d, rtol=0, atol=1e-13 * np.abs(ref_d).max())


def test_factor_gram_from_the_upper_triangle_equals_the_dense_products():
    """``W^T diag(g) W`` and ``diag(W S W^T)`` at f = 0, built from the per-pixel products of the
    upper triangle only, against the dense sums (an asymmetric ``S`` is symmetrised by the
    products, so the test uses a symmetric one)."""
    m, wave = _model(k=2)
    a = m.arrays
    pr = prepare(a, wave, GRID)
    rng = np.random.default_rng(1)
    g = rng.random((6, P)) * 10.0 ** rng.uniform(0, 6, (6, 1))
    g[:, 50:90] = 0.0
    assert pr.ww.shape == (2, P, Q * (Q + 1) // 2)
    for k in range(2):
        ref = np.einsum("np,pi,pj->nij", g, a["w"][k], a["w"][k])
        np.testing.assert_allclose(pr.gram(k, 0, g), ref, rtol=0, atol=1e-13 * np.abs(ref).max())
        half = rng.standard_normal((6, Q, Q))
        s = half @ np.swapaxes(half, 1, 2)
        ref_d = np.einsum("pi,nij,pj->np", a["w"][k], s, a["w"][k])
        np.testing.assert_allclose(pr.gram_diag(k, 0, s), ref_d, rtol=0, atol=1e-13 * np.abs(ref_d).max())


def test_blocked_triangular_inverse():
    rng = np.random.default_rng(1)
    for q in (5, 17, 61):
        half = rng.standard_normal((3, q, q + 2))
        chol = np.linalg.cholesky(np.eye(q) + half @ np.swapaxes(half, 1, 2))
        ref = np.linalg.inv(chol)
        np.testing.assert_allclose(tri_inverse(chol), ref, rtol=0, atol=1e-13 * np.abs(ref).max())


def test_floor_evidence_equals_a_cholesky_per_floor():
    """log det P_f and t_f^T P_f^-1 t_f from one tridiagonalisation == one Cholesky per floor,
    including ill-conditioned latent precisions and a zero projected residual."""
    rng = np.random.default_rng(2)
    n, q, big = 6, 4, 40
    half = rng.standard_normal((n, big, big + 3)) * np.geomspace(1, 1e3, big)[None, :, None]
    mat = half @ np.swapaxes(half, 1, 2)
    t = rng.standard_normal((n, big)) * 30.0
    t[0] = 0.0
    floors = np.array(GRID[1:])
    logdet, fit = floor_evidence(mat, t, q, floors)
    for j, f in enumerate(floors):
        c = np.r_[np.ones(q), np.full(big - q, f)]
        chol = np.linalg.cholesky(np.eye(big) + mat * np.outer(c, c))
        u = np.linalg.solve(chol, (t * c)[..., None])[..., 0]
        ref_ld = 2 * np.log(np.diagonal(chol, axis1=1, axis2=2)).sum(axis=1)
        np.testing.assert_allclose(logdet[:, j], ref_ld, rtol=1e-11, atol=1e-10)
        np.testing.assert_allclose(fit[:, j], (u * u).sum(axis=1), rtol=1e-9, atol=1e-12)


def test_scan_equals_the_dense_gaussian_evidence_at_every_floor():
    """The floor scan's log evidence of a (component, amplitude) term == log N(y; s mu,
    s^2 ([W, f B][W, f B]^T + D) + diag(1/ivar)) over the unmasked pixels, at every floor f > 0."""
    m, wave = _model()
    y, ivar = _spectra(m, wave)
    pr = m.prior()
    a = m.arrays
    basis = mismatch_basis(a["mu"], wave)
    good = ivar > 0
    slog = np.log(np.where(good, ivar, 1.0)).sum(axis=1)
    s = m._grid(y, ivar)[:, 1]
    for k in range(2):
        got = scan(pr, y, ivar, slog, good.sum(axis=1).astype(float), s, k)[0]
        for i in range(len(y)):
            g = good[i]
            for j, f in enumerate(GRID[1:]):
                x = np.concatenate([a["w"][k], f * basis[k]], axis=1)[g]
                cov = s[i] ** 2 * (x @ x.T + np.diag(a["d"][k][g])) + np.diag(1.0 / ivar[i][g])
                chol = np.linalg.cholesky(cov)
                r = np.linalg.solve(chol, y[i][g] - s[i] * a["mu"][k][g])
                ref = -0.5 * (r @ r + 2 * np.log(np.diag(chol)).sum() + g.sum() * np.log(2 * np.pi))
                assert got[i, j] == pytest.approx(ref, rel=1e-10, abs=1e-7)


def test_batched_terms_at_the_chosen_floor_match_the_per_floor_evaluation():
    """batch_terms (scan, then the chosen floor's terms only) gives the floor, weights and latent
    posteriors that evaluating every lead term at every floor with its own Cholesky gives."""
    m, wave = _model()
    y, ivar = _spectra(m, wave)
    pr = m.prior()
    grid = m._grid(y, ivar)
    t = infer.batch_terms(pr, y, ivar, grid)  # every spectrum considers the floor
    assert np.all(t.f_hat > 0)
    b = infer._Batch(pr, y, ivar, grid)
    for i in range(len(y)):
        sel = np.flatnonzero((t.row == i) & (t.fidx == t.f_hat[i]))
        rows, comp, sidx = np.full(len(sel), i), t.comp[sel], t.sidx[sel]
        b.grid[i, sidx] = t.s[sel]  # a refined amplitude's column is filled by batch_terms only
        per_floor = np.stack([b.run(rows, comp, np.full(len(sel), f), sidx) for f in range(1, len(GRID))], 1)
        np.testing.assert_allclose(b.scan(rows, comp, sidx), per_floor, rtol=1e-12, atol=1e-8)
        np.testing.assert_allclose(t.logw[sel], per_floor[:, t.f_hat[i] - 1], rtol=1e-11)
        mz, chol = t.latent(sel)  # kept from the scan's pieces: the latent posterior of a fresh evaluation
        for j, term in enumerate(sel):
            ref = evaluate(
                pr,
                y[i : i + 1],
                ivar[i : i + 1],
                b.slog[i : i + 1],
                b.ngood[i : i + 1],
                t.s[term : term + 1],
                int(t.comp[term]),
                int(t.f_hat[i]),
            )
            np.testing.assert_allclose(mz[j], ref["mz"][0], rtol=1e-9, atol=1e-12 * np.abs(ref["mz"]).max())
            np.testing.assert_allclose(chol[j], ref["chol"][0], rtol=1e-10, atol=1e-12 * np.abs(ref["chol"]).max())
    mean, sd, chi = m.predict(y, ivar, calibrated=False, scale="input")
    assert np.all(np.isfinite(mean)) and np.all(sd > 0)
