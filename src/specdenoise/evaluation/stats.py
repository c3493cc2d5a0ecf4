"""Small statistics shared by the evaluation stages."""

from __future__ import annotations

import numpy as np


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman rank correlation (ties get average ranks); NaN for fewer than 5 points or a constant input."""
    from scipy.stats import spearmanr  # scipy.stats takes ~0.6 s to import: only when needed

    a, b = np.asarray(a, float), np.asarray(b, float)
    if len(a) < 5 or np.std(a) == 0 or np.std(b) == 0:
        return float("nan")
    return float(spearmanr(a, b).statistic)
