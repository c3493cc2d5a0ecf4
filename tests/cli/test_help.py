"""Every group and command of the ``specdenoise`` CLI, wherever it is registered, has working ``--help``.

The command tree is walked generically from ``typer.main.get_command(app)``, so commands added
by sub-modules (``register`` functions, ``add_typer``) are covered without being listed here.
Typer 0.29 vendors click (``typer._click``), so groups are recognised by their ``commands``
mapping, not by ``isinstance(..., click.Group)``.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from specdenoise.cli import app


def subcommands(cmd) -> dict:
    """The sub-commands of a group (empty for a plain command)."""
    return dict(getattr(cmd, "commands", None) or {})


def walk(cmd, path: tuple[str, ...] = ()):
    """Yield ``(path, command)`` for the root, every group and every command, depth first."""
    yield path, cmd
    for name, sub in sorted(subcommands(cmd).items()):
        yield from walk(sub, (*path, name))


ROOT_COMMAND = typer.main.get_command(app)
TREE = list(walk(ROOT_COMMAND))


def test_the_tree_has_groups_and_commands():
    groups = [p for p, c in TREE if subcommands(c)]
    leaves = [p for p, c in TREE if not subcommands(c)]
    assert () in groups and any(len(p) == 1 for p in groups), groups  # root and a nested group at least
    assert all(len(p) >= 1 for p in leaves) and len(leaves) >= 2
    # every group that is shown has something in it
    for path, cmd in TREE:
        if hasattr(cmd, "commands"):
            assert cmd.commands, f"group '{' '.join(path)}' has no commands"


@pytest.mark.parametrize(("path", "cmd"), TREE, ids=[" ".join(p) or "specdenoise" for p, _ in TREE])
def test_help_exits_0_with_a_description(path, cmd):
    res = CliRunner().invoke(app, [*path, "--help"])
    assert res.exit_code == 0, res.output
    assert "Usage" in res.output
    text = (cmd.help or cmd.short_help or "").strip()
    assert text, f"'{' '.join(('specdenoise', *path))}' has no help text (docstring or help=)"
    first = text.splitlines()[0].strip()
    assert first[:30] in " ".join(res.output.split()), "the help text is not shown by --help"


def test_console_script_help():
    """The installed entry point (``specdenoise = specdenoise.cli:main``) answers --help."""
    exe = Path(sys.executable).parent / "specdenoise"
    res = subprocess.run([str(exe), "--help"], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    assert "Usage" in res.stdout and "Traceback" not in res.stderr


def test_flags_are_shown_without_a_value_and_take_none():
    """Boolean flags read ``--quiet``, not ``--quiet <bool>`` (typer 0.29 shows <bool> by default)."""
    runner = CliRunner()
    for args in (["-h"], ["denoise", "-h"]):
        res = runner.invoke(app, args, terminal_width=120)
        assert res.exit_code == 0 and "--quiet" in res.output or "--per-spectrum" in res.output
        assert "<bool>" not in res.output, res.output
    assert "<float>" in runner.invoke(app, ["denoise", "-h"], terminal_width=120).output  # values still shown
