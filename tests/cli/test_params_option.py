"""``--params``: an explicit file that does not exist is a one-line error, never the defaults."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

BIN = Path(sys.executable).parent / "specdenoise"


def test_missing_explicit_params_file_is_an_error(tmp_path):
    res = subprocess.run(
        [str(BIN), "data", "noise", "--params", "nope.yaml", "--spectra", "x.npz", "--out", "y.npz"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert res.returncode == 2
    assert res.stderr.strip().splitlines()[-1] == "error: nope.yaml: parameters file not found"
    assert "Traceback" not in res.stderr and not (tmp_path / "y.npz").exists()


def test_without_params_the_built_in_defaults_apply(tmp_path):
    # no params.yaml here: the defaults (= profiles/default.yaml) are used, the spectra file is then the culprit
    res = subprocess.run(
        [str(BIN), "data", "noise", "--spectra", "x.npz", "--out", "y.npz"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert res.returncode == 3  # a missing input is a data error (errors.EXIT_DATA)
    assert res.stderr.strip().splitlines()[-1] == "error: x.npz: file not found"
