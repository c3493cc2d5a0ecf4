"""Errors that the command line reports as one line, with a documented exit status and no traceback.

Exit statuses (the README's "Failure behaviour" section documents them):

====  ==================================================================================
0     everything asked for was done
1     a batch ran but some of its inputs failed (each is listed; the good ones are written)
2     usage or configuration error: a bad option, ``params.yaml``, model choice (:class:`ConfigError`)
3     data error: a missing, corrupt or physically invalid input file, model or calibration
      (:class:`DataError`, :class:`ModelError`) or a failed validation suite
4     an unexpected internal error (a bug: please report it with the ``--debug`` traceback)
130   interrupted (Ctrl-C)
====  ==================================================================================
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_PARTIAL = 1
EXIT_USAGE = 2
EXIT_DATA = 3
EXIT_INTERNAL = 4
EXIT_INTERRUPTED = 130


class SpecdenoiseError(Exception):
    """A user-facing error: bad input, bad parameters, a failed validation.

    The message names the culprit (file, field, key or parameter) and fits on one line.
    """

    exit_code = EXIT_USAGE


class ConfigError(SpecdenoiseError):
    """Unknown, missing, duplicate, non-finite or ill-typed key in ``params.yaml``, or a bad option."""

    exit_code = EXIT_USAGE


class DataError(SpecdenoiseError):
    """Missing, corrupt or physically invalid input data (NaN flux, bad wavelengths, ...)."""

    exit_code = EXIT_DATA


class ModelError(DataError):
    """A trained model, its metadata or its calibration is missing, corrupt, unsafe or mismatched."""


class ValidationFailed(DataError):
    """A great-expectations suite failed; the message summarises which expectations."""


def one_line(message: object) -> str:
    """``message`` as a single line (newlines folded), for an ``error:`` line on stderr."""
    return " ".join(str(message).split())
