"""Errors that the command line reports as one line, with a non-zero exit and no traceback."""

from __future__ import annotations


class SpecdenoiseError(Exception):
    """A user-facing error: bad input, bad parameters, a failed validation.

    The message names the culprit (file, field or parameter) and fits on one line.
    """

    exit_code = 2


class ConfigError(SpecdenoiseError):
    """Unknown, missing or ill-typed key in ``params.yaml``."""


class DataError(SpecdenoiseError):
    """Missing, corrupt or physically invalid input data (NaN flux, bad wavelengths, ...)."""


class ValidationFailed(SpecdenoiseError):
    """A great-expectations suite failed; the message summarises which expectations."""

    exit_code = 3
