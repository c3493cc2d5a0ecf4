"""The resume manifest of ``specdenoise denoise``: when may a rerun skip an input?

For every finished input the batch writes ``<out>/<stem>.done.json`` (atomically, after all of
that input's outputs) holding:

* ``input``: the input's path, ``size`` (bytes) and ``sha256`` (streamed, 1 MiB blocks);
* ``options``: everything that changes the result (model URI and its identity: run id,
  version, parameter hash; calibration; added noise and seed; ``max_masked``);
* ``outputs``: each output's ``name`` (relative to ``<out>``), ``size`` and ``sha256``;
* anything else the caller adds (``spectra``: id, z, masked fraction per spectrum).

:func:`check_done` skips an input only when the record is readable and complete, the options
are equal, the input's size and sha256 are those recorded (a *different* file with the same
name is redone), and every output exists, is not empty and has the recorded size and sha256
(a deleted, truncated, zero-byte or edited output is redone). Otherwise it returns the reason,
which the batch logs. A marker or ``summary.json`` that is a folder is a
:class:`~specdenoise.errors.DataError` naming it (:func:`check_markers`), raised before any work.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from specdenoise.errors import DataError
from specdenoise.io import save_json

SUMMARY = "summary.json"
MANIFEST_VERSION = 2
_BLOCK = 1 << 20


def file_stem(path: Path) -> str:
    """``spec-0266-51602-0001.fits(.gz)`` -> ``spec-0266-51602-0001``."""
    name = Path(path).name
    for ext in (".fits.gz", ".fit.gz", ".fits", ".fit", ".fz"):
        if name.lower().endswith(ext):
            return name[: -len(ext)]
    return Path(path).stem


def done_path(out_dir: Path, path: Path) -> Path:
    """The resume record of input ``path``: ``<out_dir>/<stem>.done.json``."""
    return Path(out_dir) / f"{file_stem(Path(path))}.done.json"


def file_identity(path: Path) -> dict[str, Any]:
    """``{"size": bytes, "sha256": hex}`` of a file, read in 1 MiB blocks (any size)."""
    h = hashlib.sha256()
    size = 0
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(_BLOCK), b""):
            h.update(block)
            size += len(block)
    return {"size": size, "sha256": h.hexdigest()}


def input_record(path: Path) -> dict[str, Any]:
    """The identity of an input file: ``{"path", "size", "sha256"}``."""
    return {"path": str(path), **file_identity(Path(path))}


def check_markers(out_dir: Path, inputs: Iterable[Path]) -> None:
    """Raise :class:`DataError` if ``summary.json`` or an input's ``<stem>.done.json`` in
    ``out_dir`` is a folder (or anything but a regular file), so nothing is written."""
    for p in [Path(out_dir) / SUMMARY, *(done_path(out_dir, i) for i in inputs)]:
        if p.is_symlink() or (p.exists() and not p.is_file()):
            raise DataError(f"{p}: exists and is not a regular file (a folder?); move it away and rerun")


def write_done(out_dir: Path, inp: dict[str, Any], options: dict[str, Any], outputs: list[str], **extra: Any) -> Path:
    """Write the resume record of one finished input (call it after every output is in place).

    Parameters
    ----------
    out_dir : Path
    inp : dict
        :func:`input_record` of the input, taken *before* it was read.
    options : dict
        JSON-able options and model identity the outputs depend on.
    outputs : list of str
        Output file names relative to ``out_dir``; each is hashed now.
    **extra
        Anything else to keep in the record (e.g. ``spectra``).
    """
    out_dir = Path(out_dir)
    recs = [{"name": n, **file_identity(out_dir / n)} for n in outputs]
    rec = {"version": MANIFEST_VERSION, "input": inp, "options": options, "outputs": recs, **extra}
    return save_json(done_path(out_dir, Path(inp["path"])), rec)


def load_done(out_dir: Path, path: Path) -> dict[str, Any] | None:
    """The resume record of ``path``, or None when absent or unreadable."""
    marker = done_path(out_dir, path)
    try:
        rec = json.loads(marker.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    return rec if isinstance(rec, dict) else None


def output_names(rec: dict[str, Any]) -> list[str]:
    """The output names of a resume record."""
    return [o["name"] for o in rec.get("outputs", []) if isinstance(o, dict) and "name" in o]


def check_done(out_dir: Path, path: Path, options: dict[str, Any]) -> tuple[bool, str]:
    """Whether input ``path`` was finished by an earlier run with the same options and is intact.

    Returns
    -------
    done : bool
    reason : str
        Why it must be redone (empty when done): ``"no record"``, ``"record unreadable"``,
        ``"options changed"``, ``"input changed (...)"``, ``"output X missing"``,
        ``"output X is empty"``, ``"output X changed"``.
    """
    out_dir = Path(out_dir)
    if not done_path(out_dir, path).exists():
        return False, "no record"
    rec = load_done(out_dir, path)
    if rec is None or rec.get("version") != MANIFEST_VERSION or not isinstance(rec.get("input"), dict):
        return False, "record unreadable or from an older version"
    if rec.get("options") != options:
        return False, "options changed"
    try:
        now = file_identity(Path(path))
    except OSError as exc:
        return False, f"input unreadable ({exc.strerror or exc})"
    was = rec["input"]
    if (now["size"], now["sha256"]) != (was.get("size"), was.get("sha256")):
        return False, f"input changed (size {was.get('size')} -> {now['size']}, sha256 {now['sha256'][:12]})"
    outs = rec.get("outputs")
    if not isinstance(outs, list) or not outs:
        return False, "record lists no outputs"
    for o in outs:
        name = o.get("name") if isinstance(o, dict) else None
        if not isinstance(name, str) or Path(name).name != name:
            return False, "record unreadable (bad output name)"
        p = out_dir / name
        if not p.is_file():
            return False, f"output {name} missing"
        if p.stat().st_size == 0:
            return False, f"output {name} is empty"
        if p.stat().st_size != o.get("size") or file_identity(p)["sha256"] != o.get("sha256"):
            return False, f"output {name} changed"
    return True, ""
