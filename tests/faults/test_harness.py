"""The harness itself: a good command passes, usage errors give one line, and --debug shows the traceback."""

from __future__ import annotations

import pytest
from tests.faults.harness import assert_fails, cli

from specdenoise.errors import EXIT_USAGE


def test_version_and_short_help():
    res = cli("--version")
    assert res.code == 0 and res.stdout.startswith("specdenoise ")
    assert cli("train", "-h").code == 0


def test_missing_params_file_is_one_line(tmp_path):
    missing = tmp_path / "nope.yaml"
    assert_fails(cli("data", "noise", "--params", missing), EXIT_USAGE, str(missing))


def test_debug_shows_the_traceback(tmp_path):
    with pytest.raises(Exception, match="nope.yaml"):
        cli("--debug", "data", "noise", "--params", tmp_path / "nope.yaml")
