"""Opening survey FITS files safely: every corrupt, truncated (also ``.gz``) or non-FITS file
becomes one :class:`~specdenoise.errors.DataError` naming it."""

from __future__ import annotations

import contextlib
import gzip
import warnings
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from astropy.io import fits
from astropy.utils.exceptions import AstropyUserWarning

from specdenoise.errors import DataError


@contextlib.contextmanager
def open_fits(path: str | Path) -> Iterator[Any]:
    """Open a FITS file fully (every header and data unit read now) or raise :class:`DataError`.

    A truncated file, a header that is not FITS or a data unit shorter than its header says
    becomes a one-line ``DataError`` naming the file instead of an astropy warning followed by
    garbage or a late exception.
    """
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: file not found")
    if path.is_dir():
        raise DataError(f"{path}: is a directory, not a FITS file")
    try:
        gz = _check_gzip(path)
        with warnings.catch_warnings():
            warnings.simplefilter("error", AstropyUserWarning)
            hdul = fits.open(path, memmap=False, lazy_load_hdus=False)
            try:
                if gz:
                    for hdu in hdul:
                        _ = hdu.data  # force the read: truncation shows here
                else:  # cheap: every data unit must end inside the file (no table parsing)
                    size = path.stat().st_size
                    for i, hdu in enumerate(hdul):
                        info = hdu.fileinfo()
                        if info and info["datLoc"] + info["datSpan"] > size:
                            raise OSError(
                                f"truncated: HDU {i} needs {info['datLoc'] + info['datSpan']} bytes, "
                                f"the file has {size}"
                            )
            except BaseException:
                hdul.close()
                raise
    except (OSError, EOFError, ValueError, TypeError, IndexError, KeyError, AstropyUserWarning) as exc:
        msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise DataError(f"{path}: not a readable FITS file ({msg})") from None
    try:
        yield hdul
    finally:
        hdul.close()


def _check_gzip(path: Path) -> bool:
    """Decompress a gzip file to its end (streaming, no memory kept) so truncation is caught.

    astropy silently drops the HDUs beyond the cut of a truncated ``.gz``; gzip itself raises
    ``EOFError`` (truncated) or ``BadGzipFile`` / ``zlib.error`` (corrupt).
    """
    with open(path, "rb") as fh:
        if fh.read(2) != b"\x1f\x8b":
            return False
    try:
        with gzip.open(path, "rb") as gz:
            while gz.read(1 << 24):
                pass
    except zlib.error as exc:
        raise OSError(f"corrupt gzip stream: {exc}") from None
    except EOFError:
        raise OSError("truncated gzip file") from None
    return True
