"""The SDSS sky-noise shape, from the real DR18 spectra that ppxf ships."""

from __future__ import annotations

import functools
import importlib.util

import numpy as np
from astropy.io import fits

from specdenoise.errors import DataError


@functools.lru_cache(maxsize=1)
def sdss_sky_shape() -> tuple[np.ndarray, np.ndarray]:
    """Observed-frame SDSS sky spectrum shape from the real DR18 spec-lite files in ppxf.

    Returns ``(log10 wavelength (vacuum, as SDSS), sky / median(sky))``: the mean of the
    ``sky`` columns of ``NGC3073_SDSS_DR18.fits`` and ``NGC3522_SDSS_DR18.fits``, each
    normalised to its median. It carries the real sky lines (5577, 5890, 6300, OH bands) and
    the blue throughput drop.
    """
    spec = importlib.util.find_spec("ppxf")
    if spec is None:
        raise DataError("ppxf: package not installed; its SDSS spectra give the sky-noise shape")
    base = next(iter(spec.submodule_search_locations))
    grid = np.arange(3.5798, 3.9640, 1e-4)
    shapes = []
    for name in ("NGC3073_SDSS_DR18.fits", "NGC3522_SDSS_DR18.fits"):
        path = f"{base}/spectra/{name}"
        try:
            with fits.open(path, memmap=False) as hdul:
                tab = hdul["COADD"].data
                ll = np.asarray(tab["loglam"], dtype=float)
                sky = np.asarray(tab["sky"], dtype=float)
        except (OSError, KeyError) as exc:
            raise DataError(f"{path}: cannot read SDSS sky ({exc})") from None
        shapes.append(np.interp(grid, ll, sky / np.median(sky)))
    return grid, np.clip(np.mean(shapes, axis=0), 0.05, None)


def sky_noise_shape(log_wave_obs: np.ndarray) -> np.ndarray:
    """Relative sky-limited sigma at observed log10 wavelengths (1 at the median sky)."""
    grid, shape = sdss_sky_shape()
    return np.sqrt(np.interp(log_wave_obs, grid, shape))
