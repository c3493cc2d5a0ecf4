"""Emission-line fluxes with pPXF 9.x (Cappellari 2017, 2023): the paper's measurement.

Stellar continuum: the E-MILES SSPs built by :mod:`specdenoise.physics.templates` (not the library that
generated the universe), read with ``ppxf.sps_util.sps_lib`` at a quarter of the galaxy's
velocity scale (``velscale_ratio=4``). Gas: ``ppxf.ppxf_util.emission_lines`` with
``pixel=True`` (each line integrated over the pixel: the 825-bin grid is ~276 km/s per bin and
under-samples narrow lines), one kinematic component for the stars and one for all gas lines,
a multiplicative polynomial of degree 8. Fits run in parallel over the cores (joblib) with a
progress bar and are cached on disk by the hash of the input spectrum, so re-running is free.
A fit that raises or returns non-finite fluxes is flagged (``ok = False``), never fatal.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from specdenoise.io import save_text
from specdenoise.physics.constants import C_KMS
from specdenoise.physics.grids import LINES

#: SDSS instrumental FWHM (A) used for the gas templates.
FWHM_GAL = 2.76
#: pPXF gas template -> (our line name, divisor turning the template flux into the line's flux).
PPXF_NAMES = {
    "Halpha": ("Halpha", 1.0),
    "Hbeta": ("Hbeta", 1.0),
    "Hdelta": ("Hdelta", 1.0),
    "Hgamma": ("Hgamma", 1.0),
    "[SII]6716": ("SII_6716", 1.0),
    "[SII]6731": ("SII_6731", 1.0),
    "[OIII]5007_d": ("OIII_5007", 1.33),
    "[NII]6583_d": ("NII_6583", 1.33),
    "[OII]3726": ("OII_3726", 1.0),
    "[OII]3729": ("OII_3729", 1.0),
}


class PpxfFitter:
    """Callable ``flux (n, n_pix) -> {line: {"flux", "err", "ok"}}`` on the common rest grid."""

    def __init__(
        self,
        templates_path: str | Path,
        wave: np.ndarray,
        cache_dir: str | Path | None = None,
        n_jobs: int = 2,
        progress: bool = False,
    ):
        import ppxf.ppxf_util as util
        import ppxf.sps_util as lib

        self.wave = np.asarray(wave, dtype=float)
        self.velscale = C_KMS * np.log(self.wave[-1] / self.wave[0]) / (len(self.wave) - 1)
        self.ratio = 4
        sps = lib.sps_lib(str(templates_path), self.velscale / self.ratio, norm_range=[5070, 5950])
        stars = sps.templates.reshape(sps.templates.shape[0], -1)
        lam_range = [self.wave[0], self.wave[-1]]
        gas, names, _ = util.emission_lines(sps.ln_lam_temp, lam_range, FWHM_GAL, pixel=True)
        self.templates = np.column_stack([stars, gas])
        self.n_stars = stars.shape[1]
        self.gas_names = [str(n) for n in names]
        self.lam_temp = np.exp(sps.ln_lam_temp)
        self.component = [0] * self.n_stars + [1] * len(self.gas_names)
        self.n_jobs = n_jobs
        self.progress = progress
        self.cache_dir = Path(cache_dir) if cache_dir else None
        key = (
            hashlib.sha256(Path(templates_path).read_bytes()).hexdigest()[:12]
            + f"-{len(self.wave)}-{self.wave[0]:.2f}-{self.wave[-1]:.2f}"
        )
        self.key = key

    def fit_one(self, flux: np.ndarray, noise: np.ndarray | None = None) -> dict[str, Any]:
        """Fit one spectrum; returns line fluxes (flux-density units x A) and a success flag."""
        from ppxf.ppxf import ppxf

        galaxy = np.asarray(flux, dtype=float)
        if not np.all(np.isfinite(galaxy)) or np.all(galaxy == 0):
            return {"ok": False, "fluxes": {}, "errors": {}, "reason": "non-finite or empty spectrum"}
        scale = np.median(np.abs(galaxy)) or 1.0
        g = galaxy / scale
        nz = np.full_like(g, 0.05) if noise is None else np.asarray(noise, float) / scale
        try:
            pp = ppxf(
                self.templates,
                g,
                nz,
                self.velscale,
                start=[[0.0, 150.0], [0.0, 100.0]],
                moments=[2, 2],
                degree=-1,
                mdegree=8,
                lam=self.wave,
                lam_temp=self.lam_temp,
                component=self.component,
                gas_component=np.array(self.component) > 0,
                gas_names=self.gas_names,
                velscale_ratio=self.ratio,
                quiet=True,
            )
        except Exception as exc:  # pPXF raises assorted errors on degenerate input
            return {"ok": False, "fluxes": {}, "errors": {}, "reason": f"{type(exc).__name__}: {exc}"[:200]}
        fluxes, errors = {}, {}
        for name, f, e in zip(self.gas_names, pp.gas_flux, pp.gas_flux_error, strict=True):
            if name in PPXF_NAMES:
                ours, div = PPXF_NAMES[name]
                # gas_flux comes per pixel of the log grid: x (pixel width in A at the line)
                per_pixel = LINES[ours][0] * self.velscale / C_KMS
                fluxes[ours] = float(f) * scale * per_pixel / div
                errors[ours] = float(e) * scale * per_pixel / div if np.isfinite(e) else float("nan")
        return {"ok": True, "fluxes": fluxes, "errors": errors}

    def _cached(self, flux: np.ndarray) -> dict[str, Any]:
        if self.cache_dir is None:
            return self.fit_one(flux)
        h = hashlib.sha256(np.ascontiguousarray(flux, dtype=np.float32).tobytes() + self.key.encode()).hexdigest()
        path = self.cache_dir / h[:2] / f"{h}.json"
        with contextlib.suppress(FileNotFoundError, ValueError):  # absent, or unreadable: fit again
            return json.loads(path.read_text())
        res = self.fit_one(flux)
        save_text(path, json.dumps(res))  # atomic: a killed run leaves no half-written cache entry
        return res

    def __call__(self, flux: np.ndarray) -> dict[str, dict[str, np.ndarray]]:
        from joblib import Parallel, delayed

        flux = np.asarray(flux, dtype=float)
        rows = tqdm(flux, desc="pPXF", unit="spec", disable=not self.progress, leave=False)
        results = Parallel(n_jobs=self.n_jobs)(delayed(self._cached)(row) for row in rows)
        out: dict[str, dict[str, np.ndarray]] = {}
        for _, (ours, _) in PPXF_NAMES.items():
            f = np.array([r["fluxes"].get(ours, np.nan) if r["ok"] else np.nan for r in results])
            e = np.array([r["errors"].get(ours, np.nan) if r["ok"] else np.nan for r in results])
            out[ours] = {"flux": f, "err": e, "ok": np.isfinite(f) & (f > 0)}
        return out
