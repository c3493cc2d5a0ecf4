"""``specdenoise templates``: the E-MILES template library (DVC stage ``templates``)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from specdenoise.cli.common import TEMPLATES
from specdenoise.physics.templates import build_emiles


def templates_cmd(
    out: Annotated[Path, typer.Option(help="Template file (ppxf sps_util .npz layout).")] = TEMPLATES,
) -> None:
    """Build the E-MILES template library from the ppxf 8.2.6 source distribution (once)."""
    prov = build_emiles(out)
    typer.echo(f"templates: {prov['n_spectra']} E-MILES SSPs ({prov['source']}, sha256 {prov['sha256'][:12]}) -> {out}")
