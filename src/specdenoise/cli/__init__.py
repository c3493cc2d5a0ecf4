"""The ``specdenoise`` command line (Typer). One DVC stage = one command.

Each command group lives in a module of its own and only parses options, calls the stage's
``run`` in its domain module and prints. Logs and progress go to stderr, results to stdout.
Bad input gives a one-line ``error:`` message naming the file, field or parameter and a
non-zero exit (see :mod:`specdenoise.errors`: 1 partial batch, 2 usage/config, 3 data,
4 internal), never a traceback (``--debug`` shows it) or a partial output file.
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path
from typing import Annotated

import typer

from specdenoise.cli import bench, data, denoise, evaluate, leaderboard, mzr, survey, templates, train
from specdenoise.cli.common import STATE, quiet_libraries
from specdenoise.errors import EXIT_INTERNAL, EXIT_INTERRUPTED, SpecdenoiseError, one_line
from specdenoise.io import save_text
from specdenoise.profiles import profile_text
from specdenoise.version import __version__

app = typer.Typer(
    name="specdenoise",
    help="De-noise galaxy optical spectra with PCA, autoencoders and VAEs (after Scourfield et al.).",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=True,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"specdenoise {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Only warnings and errors on stderr.")] = False,
    verbose: Annotated[
        bool,
        typer.Option(
            "--verbose", "-v", help="Debug logging on stderr, library logs (TensorFlow, Dask, MLflow) included."
        ),
    ] = False,
    debug: Annotated[
        bool, typer.Option("--debug", help="Show the Python traceback of an error instead of one line.")
    ] = False,
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = False,
) -> None:
    STATE["debug"] = debug
    level = logging.WARNING if quiet else logging.DEBUG if verbose else logging.INFO
    logging.basicConfig(
        level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr, force=True
    )
    quiet_libraries(verbose)
    STATE["progress"] = not quiet and sys.stderr.isatty()


def profile_cmd(
    name: Annotated[str, typer.Argument(help="Profile: smoke, default or paper (profiles/<name>.yaml).")],
    out: Annotated[Path, typer.Option(help="Parameters file to write.")] = Path("params.yaml"),
) -> None:
    """Write params.yaml for a profile (profiles/default.yaml merged with profiles/<name>.yaml)."""
    save_text(out, profile_text(name))
    typer.echo(f"profile {name} -> {out}")


# the pipeline in dvc.yaml order: data stages, training, evaluation, MZR test; then the tools
app.add_typer(data.app, name="data")
data.app.command("download-sdss")(survey.download_sdss_cmd)
data.app.command("download-mpajhu")(survey.download_mpajhu_cmd)
data.app.command("read")(survey.read_cmd)
app.command("train")(train.train_cmd)
app.command("train-axis")(train.train_axis_cmd)
app.command("evaluate")(evaluate.evaluate_cmd)
app.command("uncertainty")(evaluate.uncertainty_cmd)
app.command("templates")(templates.templates_cmd)
app.command("lines")(evaluate.lines_cmd)
app.add_typer(mzr.app, name="mzr")
app.command("leaderboard")(leaderboard.leaderboard_cmd)
app.command("denoise")(denoise.denoise_cmd)
app.add_typer(bench.app, name="bench")
app.command("profile")(profile_cmd)


def main() -> None:
    """Console entry point: run the app, turning every error into one ``error:`` line and an exit status.

    A :class:`SpecdenoiseError` exits with its own status (2 usage/config, 3 data); anything else
    is a bug and exits 4. ``--debug`` (or ``SPECDENOISE_DEBUG=1``) re-raises to show the traceback.
    """
    try:
        app()
    except SpecdenoiseError as exc:
        _fail(exc, f"error: {one_line(exc)}", exc.exit_code)
    except KeyboardInterrupt as exc:
        _fail(exc, "error: interrupted", EXIT_INTERRUPTED)
    except MemoryError as exc:
        _fail(exc, "error: out of memory (lower universe.chunk_size or the sample size)", EXIT_INTERNAL)
    except Exception as exc:  # noqa: BLE001 - the last line of defence: one line, never a traceback
        what = one_line(f"{type(exc).__name__}: {exc}")
        _fail(exc, f"error: internal error ({what}); rerun with --debug for the traceback", EXIT_INTERNAL)


def _fail(exc: BaseException, line: str, status: int) -> None:
    if STATE.get("debug") or os.environ.get("SPECDENOISE_DEBUG"):
        raise exc
    typer.echo(line, err=True)
    raise SystemExit(status) from None


if __name__ == "__main__":
    main()
