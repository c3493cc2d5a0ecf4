"""How well the data tell the galaxy classes apart, per S/N: the ceiling on per-class calibration.

A posterior (or a calibration of its intervals) that is right given the data holds 68 % of the
truths among spectra that look alike. It holds 68 % within one galaxy class only where the class is
a function of the data: where the data cannot tell a narrow-line AGN from an absorption-line galaxy,
both get one interval rule, and the rarer class's truths fall out on the side of the commoner's.
:func:`separability` measures how far the data name the class: a multinomial logistic classifier on
per-spectrum features known at inference (:func:`features`), cross-validated on the class grid's own
spectra (every class equally often), gives the accuracy and each class's AUC against the rest (0.5:
the data do not tell that class from the others; 1: always).
"""

from __future__ import annotations

from typing import Any

import numpy as np

#: floor of a posterior-mean line flux before its log10 (unit-norm spectra: lines are 1e-3 to 1)
FLUX_FLOOR = 1e-4


def _log_flux(v: np.ndarray) -> np.ndarray:
    return np.log10(np.clip(np.nan_to_num(v, nan=FLUX_FLOOR), FLUX_FLOOR, None))


def features(inp: dict, den: dict, log_snr: np.ndarray, spec: np.ndarray, lines) -> np.ndarray:
    """Classifier features (n, 1 + S + 2 L + 2), all known at inference.

    Parameters
    ----------
    inp, den : dict
        Fast-fitter results on the input (with ``{line}_err``) and on the posterior mean:
        ``{line: (n,)}`` fluxes at the input's scale.
    log_snr : (n,) array
        log10 continuum S/N per pixel of the input.
    spec : (n, S) array
        Per-spectrum calibration features (:func:`~specdenoise.models.posterior_calibrate.spectrum_features`).
    lines : sequence of str
        The lines; the last two columns are log10 [NII]/H-alpha and [OIII]/H-beta of the posterior
        mean when those four lines are among them.

    Returns
    -------
    (n, F) array: log S/N, ``spec``, per line asinh of the input fit's flux / error (its detection
    S/N; 0 where the fit gives no finite error) and log10 of the posterior mean's flux, then the
    two ratios (0 where the lines are not all given)."""
    cols = [np.asarray(log_snr, float), *np.asarray(spec, float).T]
    for line in lines:
        err = np.asarray(inp[f"{line}_err"], float)
        ok = np.isfinite(err) & (err > 0)
        cols.append(np.where(ok, np.arcsinh(np.nan_to_num(inp[line]) / np.where(ok, err, 1.0)), 0.0))
        cols.append(_log_flux(np.asarray(den[line], float)))
    n = len(cols[0])
    have = {"Halpha", "Hbeta", "OIII_5007", "NII_6583"} <= set(lines)
    cols.append(_log_flux(den["NII_6583"]) - _log_flux(den["Halpha"]) if have else np.zeros(n))
    cols.append(_log_flux(den["OIII_5007"]) - _log_flux(den["Hbeta"]) if have else np.zeros(n))
    return np.nan_to_num(np.stack(cols, axis=1))


def separability(x: np.ndarray, classes: np.ndarray, seed: int, folds: int = 2) -> dict[str, Any]:
    """Cross-validated (``folds``-fold, stratified, shuffled with ``seed``) multinomial logistic
    classifier of ``classes`` (n,) from features ``x`` (n, F): ``accuracy``, ``chance`` (the largest
    class's share), ``auc`` per class (one against the rest, from the held-out probabilities)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import StratifiedKFold, cross_val_predict

    names, y = np.unique(np.asarray(classes).astype(str), return_inverse=True)
    if len(names) < 2:
        raise ValueError(f"separability: needs at least two classes, got {list(names)}")
    sd = x.std(axis=0)
    xs = (x - x.mean(axis=0)) / np.where(sd > 0, sd, 1.0)
    cv = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    p = cross_val_predict(LogisticRegression(max_iter=3000), xs, y, cv=cv, method="predict_proba")
    return {
        "accuracy": float(np.mean(p.argmax(axis=1) == y)),
        "chance": float(np.bincount(y).max() / len(y)),
        "auc": {str(c): float(roc_auc_score(y == k, p[:, k])) for k, c in enumerate(names)},
    }
