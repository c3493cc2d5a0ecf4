"""Quiet native libraries at the source: TensorFlow / XLA write absl log lines ("oneDNN custom
operations are on", "Could not find cuda drivers", "failed call to cuInit") straight to file
descriptor 2 while they load, which no Python logger or environment variable (TensorFlow 2.21
ignores ``TF_CPP_MIN_LOG_LEVEL`` for them) can hold back.

:func:`quiet_native_stderr` points descriptor 2 at ``/dev/null`` around such a load, unless
``SPECDENOISE_VERBOSE=1`` (set by ``specdenoise --verbose``, inherited by Dask workers).
Python exceptions raised meanwhile are unaffected.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator

VERBOSE_ENV = "SPECDENOISE_VERBOSE"


def verbose() -> bool:
    """Whether library logs are wanted (``specdenoise --verbose``)."""
    return os.environ.get(VERBOSE_ENV) == "1"


@contextlib.contextmanager
def quiet_native_stderr() -> Iterator[None]:
    """Send what native code writes to file descriptor 2 to ``/dev/null`` meanwhile (not when verbose)."""
    if verbose():
        yield
        return
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):  # no real descriptor 2 (embedded interpreters): nothing to quiet
        yield
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)
