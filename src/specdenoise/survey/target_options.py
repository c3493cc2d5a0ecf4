"""Defaults of the per-target options of batch de-noising: one source for ``specdenoise denoise``,
:func:`specdenoise.survey.batch.run_batch` and the benchmarks. A module of its own, free of the
survey stack, so that the command line can show them without loading it."""

from __future__ import annotations

from typing import Any

#: Defaults of the per-target options of :func:`~specdenoise.survey.batch.run_batch` (its
#: ``options`` dict, also in done.json): quality thresholds (``max_masked``: uncovered fraction of
#: the rest-frame grid, ``z_max``, ``ood_chi2``), the redshift catalogue and its column names,
#: and one output file per spectrum instead of one per input file.
TARGET_OPTIONS: dict[str, Any] = {
    "max_masked": 0.5,
    "z_max": 1.0,
    "ood_chi2": 25.0,
    "redshifts": None,
    "id_column": "TARGETID",
    "z_column": "Z",
    "type_column": "SPECTYPE",
    "per_spectrum": False,
}
