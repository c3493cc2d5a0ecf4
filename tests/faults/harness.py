"""The fault-matrix harness: run the real command line as a hostile user would and check the promise.

The promise (DEVELOPERS.md, README "Failure behaviour"): bad input gets ONE ``error:`` line on
stderr that names the culprit (file, key, parameter or model), a documented exit status
(:mod:`specdenoise.errors`), no traceback, no partial output, and inputs and earlier outputs are
left as they were.

:func:`cli` runs ``specdenoise.cli.main`` in this process (fast: no interpreter start-up);
:func:`cli_subprocess` runs the installed console script in a child process, for cases that
kill it or run two at once.
"""

from __future__ import annotations

import hashlib
import io
import os
import subprocess
import sys
from contextlib import redirect_stderr, redirect_stdout
from dataclasses import dataclass
from pathlib import Path

from specdenoise.cli import main
from specdenoise.cli.common import STATE


@dataclass(frozen=True)
class Result:
    """What a command left: its exit status and what it printed."""

    code: int
    stdout: str
    stderr: str

    @property
    def error_lines(self) -> list[str]:
        return [ln for ln in self.stderr.splitlines() if ln.startswith("error:")]


def cli(*args: object, cwd: Path | None = None) -> Result:
    """Run ``specdenoise ARGS`` in-process (optionally in ``cwd``) and return its exit status and output."""
    argv, old_cwd = ["specdenoise", *map(str, args)], Path.cwd()
    out, err = io.StringIO(), io.StringIO()
    saved_argv, saved_state = sys.argv, dict(STATE)
    sys.argv = argv
    try:
        if cwd is not None:
            os.chdir(cwd)
        with redirect_stdout(out), redirect_stderr(err):
            try:
                main()
                code = 0
            except SystemExit as exc:
                code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    finally:
        sys.argv = saved_argv
        STATE.clear()
        STATE.update(saved_state)
        os.chdir(old_cwd)
    return Result(code, out.getvalue(), err.getvalue())


def cli_subprocess(*args: object, cwd: Path | None = None, env: dict | None = None, timeout: float = 300) -> Result:
    """Run the console script ``specdenoise ARGS`` in a child process."""
    exe = Path(sys.executable).with_name("specdenoise")
    full_env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", **(env or {})}
    res = subprocess.run(
        [str(exe), *map(str, args)], cwd=cwd, env=full_env, capture_output=True, text=True, timeout=timeout
    )
    return Result(res.returncode, res.stdout, res.stderr)


def assert_fails(res: Result, code: int, *culprits: str) -> None:
    """Exit ``code``, exactly one ``error:`` line that names every culprit, and no traceback."""
    assert res.code == code, f"exit {res.code}, expected {code}\nstderr:\n{res.stderr[-3000:]}"
    assert "Traceback" not in res.stderr, res.stderr[-3000:]
    assert len(res.error_lines) == 1, f"expected one error line, got:\n{res.stderr[-3000:]}"
    line = res.error_lines[0]
    for name in culprits:
        assert str(name) in line, f"{name!r} not named in: {line}"


def fingerprint(*roots: Path) -> dict[str, str]:
    """Path -> md5 of every file (hidden ones included) under ``roots``; folders map to ``'dir'``."""
    prints: dict[str, str] = {}
    for root in roots:
        paths = [root] if root.is_file() else sorted(root.rglob("*")) if root.exists() else []
        for p in paths:
            prints[str(p)] = hashlib.md5(p.read_bytes()).hexdigest() if p.is_file() else "dir"
    return prints
