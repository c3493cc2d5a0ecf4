"""Data validation with great-expectations 1.x (ephemeral context, pandas batches).

Suites
------
``spectra``      one row per preprocessed spectrum: 825 pixels, all finite, non-negative
                 ivar, the normalisation holds, masked fraction bounded, known split.
``wavelength``   the rest-frame grid: strictly increasing, inside [wave_min, wave_max].
``catalogue``    the selected sample: unique ids, z inside the universe range, known classes,
                 masses in range, selection flux inside the bins.
``bins``         per bin: counts match the selection report, never above ``per_bin``.
``noise``        per realisation: measured std(noise) / sigma within ``noise_tolerance`` of 1
                 and mean within 5 standard errors of 0.

A failed expectation fails the stage with a one-line summary naming the suite, the
expectation, the column and how many rows failed; the full report is written first.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from specdenoise.config import Params
from specdenoise.data.artefacts import SAMPLE_COLUMNS, Spectra, load_noisy, load_sample
from specdenoise.data.preprocess import normalise
from specdenoise.errors import ValidationFailed
from specdenoise.io import load_json, save_json
from specdenoise.physics.relations import CLASSES


def _tables(params: Params, spectra: dict, noisy: dict, sample, report: dict) -> dict[str, Any]:
    flux = np.asarray(spectra["flux"], dtype=float)
    ivar = np.asarray(spectra["ivar"], dtype=float)
    wave = np.asarray(spectra["wave"], dtype=float)
    n, n_pix = flux.shape
    with np.errstate(invalid="ignore"):
        norm_value = normalise(np.nan_to_num(flux, nan=0.0, posinf=0.0, neginf=0.0), params.preprocess.norm)
    spec = pd.DataFrame(
        {
            "id": np.asarray(spectra["id"]),
            "n_pix": np.full(n, n_pix),
            "n_nonfinite": (~np.isfinite(flux)).sum(axis=1) + (~np.isfinite(ivar)).sum(axis=1),
            "ivar_min": np.nan_to_num(ivar, nan=-1.0).min(axis=1),
            "norm_value": norm_value,
            "masked_fraction": (ivar == 0).mean(axis=1),
            "split": sample["split"].to_numpy() if len(sample) == n else np.array(["?"] * n),
        }
    )
    wave_df = pd.DataFrame({"wave": wave})
    cat = sample[["id", "z", "class", "log_mass", "Halpha_flux_meas", "bin"]].copy()
    cat["class"] = cat["class"].astype(str)
    cat["log_flux"] = np.log10(cat["Halpha_flux_meas"].clip(lower=1e-30))
    counts = sample["bin"].value_counts()
    bins = pd.DataFrame(
        {
            "bin": [b["bin"] for b in report["bins"]],
            "reported": [b["selected"] for b in report["bins"]],
            "in_sample": [int(counts.get(b["bin"], 0)) for b in report["bins"]],
        }
    )
    bins["mismatch"] = (bins["reported"] - bins["in_sample"]).abs()
    rows = []
    sig = np.asarray(noisy["sigma"], dtype=float)
    for r in range(noisy["noisy"].shape[0]):
        resid = noisy["noisy"][r].astype(float) * noisy["renorm"][r][:, None] - flux
        std = resid.std()
        rows.append(
            {
                "realisation": r,
                "std_over_sigma": std / sig.mean(),
                "mean_z": resid.mean() / (std / np.sqrt(resid.size)),
                "shape_ok": int(noisy["noisy"][r].shape == flux.shape),
            }
        )
    noise_df = pd.DataFrame(rows)
    return {"spectra": spec, "wavelength": wave_df, "catalogue": cat, "bins": bins, "noise": noise_df}


def _suites(params: Params, n_pix_expected: int) -> dict[str, list]:
    import great_expectations.expectations as gxe

    pp, vc, uc, sc = params.preprocess, params.validate_, params.universe, params.select
    tol = vc.norm_tolerance
    edges_lo, edges_hi = sc.log_flux_min, sc.log_flux_max
    return {
        "spectra": [
            gxe.ExpectColumnValuesToBeBetween(column="n_pix", min_value=n_pix_expected, max_value=n_pix_expected),
            gxe.ExpectColumnValuesToBeBetween(column="n_nonfinite", min_value=0, max_value=0),
            gxe.ExpectColumnValuesToBeBetween(column="ivar_min", min_value=0.0),
            gxe.ExpectColumnValuesToBeBetween(column="norm_value", min_value=1 - tol, max_value=1 + tol),
            gxe.ExpectColumnValuesToBeBetween(
                column="masked_fraction", min_value=0.0, max_value=vc.max_masked_fraction
            ),
            gxe.ExpectColumnValuesToBeInSet(column="split", value_set=["train", "test"]),
            gxe.ExpectColumnValuesToBeUnique(column="id"),
        ],
        "wavelength": [
            gxe.ExpectTableRowCountToEqual(value=n_pix_expected),
            gxe.ExpectColumnValuesToBeIncreasing(column="wave", strictly=True),
            gxe.ExpectColumnValuesToBeBetween(column="wave", min_value=pp.wave_min, max_value=pp.wave_max),
        ],
        "catalogue": [
            gxe.ExpectColumnValuesToBeUnique(column="id"),
            gxe.ExpectColumnValuesToBeBetween(column="z", min_value=uc.z_min, max_value=uc.z_max),
            gxe.ExpectColumnValuesToBeInSet(column="class", value_set=list(CLASSES)),
            gxe.ExpectColumnValuesToBeBetween(column="log_mass", min_value=uc.log_mass_min, max_value=uc.log_mass_max),
            gxe.ExpectColumnValuesToBeBetween(column="log_flux", min_value=edges_lo, max_value=edges_hi),
            gxe.ExpectColumnValuesToBeBetween(column="bin", min_value=0, max_value=sc.n_bins - 1),
            gxe.ExpectColumnValuesToNotBeNull(column="z"),
        ],
        "bins": [
            gxe.ExpectTableRowCountToEqual(value=sc.n_bins),
            gxe.ExpectColumnValuesToBeBetween(column="mismatch", min_value=0, max_value=0),
            gxe.ExpectColumnValuesToBeBetween(column="in_sample", min_value=1, max_value=sc.per_bin),
        ],
        "noise": [
            gxe.ExpectColumnValuesToBeBetween(
                column="std_over_sigma", min_value=1 - vc.noise_tolerance, max_value=1 + vc.noise_tolerance
            ),
            gxe.ExpectColumnValuesToBeBetween(column="mean_z", min_value=-5.0, max_value=5.0),
            gxe.ExpectColumnValuesToBeBetween(column="shape_ok", min_value=1, max_value=1),
        ],
    }


def run_validation(params: Params, spectra: dict, noisy: dict, sample, report: dict) -> dict[str, Any]:
    """Run every suite; return a JSON-able report with ``success`` and per-expectation results."""
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    import great_expectations as gx

    tables = _tables(params, spectra, noisy, sample, report)
    suites = _suites(params, params.preprocess.n_pix)
    ctx = gx.get_context(mode="ephemeral")
    try:
        from great_expectations.data_context.types.base import ProgressBarsConfig

        ctx.variables.progress_bars = ProgressBarsConfig(globally=False)
    except Exception:  # progress bars are cosmetic; older/newer layouts may differ
        pass
    source = ctx.data_sources.add_pandas("specdenoise")
    out: dict[str, Any] = {"success": True, "suites": {}}
    for name, expectations in suites.items():
        batch_def = source.add_dataframe_asset(name).add_batch_definition_whole_dataframe("all")
        suite = ctx.suites.add(gx.ExpectationSuite(name=name))
        for exp in expectations:
            suite.add_expectation(exp)
        vd = ctx.validation_definitions.add(gx.ValidationDefinition(name=f"{name}_check", data=batch_def, suite=suite))
        res = vd.run(batch_parameters={"dataframe": tables[name]})
        items = []
        for r in res.results:
            cfg = r.expectation_config
            items.append(
                {
                    "expectation": cfg.type,
                    "column": cfg.kwargs.get("column"),
                    "success": bool(r.success),
                    "unexpected_count": r.result.get("unexpected_count"),
                    "element_count": r.result.get("element_count", len(tables[name])),
                    "observed_value": _plain(r.result.get("observed_value")),
                    "partial_unexpected_list": [_plain(v) for v in (r.result.get("partial_unexpected_list") or [])[:5]],
                }
            )
        out["suites"][name] = {"success": bool(res.success), "rows": int(len(tables[name])), "results": items}
        out["success"] &= bool(res.success)
    out["noise_levels"] = tables["noise"].to_dict(orient="records")
    return out


def failure_summary(report: dict[str, Any]) -> str:
    """One line naming each failed expectation, its column and how many rows failed."""
    parts = []
    for suite, body in report["suites"].items():
        for item in body["results"]:
            if not item["success"]:
                col = f"({item['column']})" if item["column"] else ""
                cnt = item["unexpected_count"]
                rows = (
                    f"{cnt} of {item['element_count']} rows"
                    if cnt is not None
                    else f"observed {item['observed_value']}"
                )
                parts.append(f"{suite}: {item['expectation']}{col} failed for {rows}")
    return "; ".join(parts)


def check(report: dict[str, Any], report_path: str) -> None:
    if not report["success"]:
        raise ValidationFailed(f"validation failed ({failure_summary(report)}); report: {report_path}")


def _plain(v: Any) -> Any:
    if isinstance(v, np.generic):
        return v.item()
    if isinstance(v, (list, tuple)):
        return [_plain(x) for x in v]
    return v


def run(params: Params, spectra: Path, noisy: Path, sample: Path, selection: Path, report: Path) -> str:
    """The ``validate`` stage: write the report, then raise :class:`ValidationFailed` when a suite failed."""
    pre = Spectra.load(spectra).require("id", source=str(spectra))
    nz = load_noisy(noisy)
    smp = load_sample(sample, SAMPLE_COLUMNS)
    res = run_validation(params, pre, nz, smp, load_json(selection))
    save_json(report, res)
    check(res, str(report))
    n_exp = sum(len(s["results"]) for s in res["suites"].values())
    return f"validate: {n_exp} expectations in {len(res['suites'])} suites passed -> {report}"
