"""Reading a saved model back: its description (:func:`read_description`), its files
(:func:`load_files`; :func:`specdenoise.models.load_model` does both for any family) and one
``.keras`` file (:func:`load_keras`).

Every way a saved model can be bad (a missing, corrupt, truncated or incomplete file, an unknown
family, a Keras file with unsafe layers) is a :class:`~specdenoise.errors.ModelError` naming the file.
"""

from __future__ import annotations

import json
import os
import zipfile
from pathlib import Path
from typing import Any

from specdenoise.errors import ModelError, SpecdenoiseError, one_line
from specdenoise.models.base import DenoisingModel


def read_description(path: str | Path) -> dict[str, Any]:
    """The ``family.json`` of a model saved by :meth:`DenoisingModel.save` in folder ``path``:
    ``family`` (str), ``latent_dim`` (int > 0), ``hyper`` (a mapping; {} if absent), ``history``.

    Raises
    ------
    ModelError
        No ``family.json``, a corrupt or incomplete one; the message names the file.
    """
    path = Path(path)
    meta_file = path / "family.json"
    try:
        meta = json.loads(meta_file.read_bytes())
    except FileNotFoundError:
        raise ModelError(f"{path}: not a saved specdenoise model (no family.json)") from None
    except (OSError, ValueError) as exc:  # a folder, binary, not JSON
        raise ModelError(f"{meta_file}: not valid JSON ({type(exc).__name__})") from None
    if not isinstance(meta, dict) or not isinstance(meta.get("family"), str) or not _is_int(meta.get("latent_dim")):
        raise ModelError(f"{meta_file}: not a model description (needs 'family' and an integer 'latent_dim')")
    meta.setdefault("hyper", {})
    if not isinstance(meta["hyper"], dict):
        raise ModelError(f"{meta_file}: 'hyper' must be a mapping")
    return meta


def load_files(cls: type[DenoisingModel], path: str | Path, meta: dict[str, Any]) -> DenoisingModel:
    """Family ``cls``'s model from folder ``path`` described by ``meta`` (:func:`read_description`).

    Raises
    ------
    ModelError
        Family files that are missing, corrupt or refused (a Keras file with unsafe layers); the
        message names the folder.
    """
    try:
        model = cls._load_files(Path(path), int(meta["latent_dim"]), meta["hyper"])
    except SpecdenoiseError:
        raise
    except Exception as exc:  # noqa: BLE001 - Keras and NumPy raise many types for a bad file
        raise ModelError(f"{path}: cannot load the {meta['family']} model ({one_line(exc)[:300]})") from None
    model.history = meta.get("history", {})
    return model


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


def load_keras(file: Path) -> Any:
    """A ``.keras`` file in safe mode (no Lambda layers, no arbitrary code); ModelError naming it otherwise."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras

    if not file.is_file():
        raise ModelError(f"{file}: file not found")
    try:  # Keras calls every unreadable archive "File not found": check the zip here
        with zipfile.ZipFile(file) as z:
            complete = z.testzip() is None and "config.json" in z.namelist()
    except (zipfile.BadZipFile, OSError, EOFError):
        complete = False
    if not complete:
        raise ModelError(f"{file}: not a Keras model file (not a complete .keras zip archive)")
    try:
        return keras.saving.load_model(file, safe_mode=True, compile=False)
    except Exception as exc:  # noqa: BLE001 - Keras raises ValueError, TypeError, OSError, zip errors...
        raise ModelError(f"{file}: not a loadable, safe Keras model ({one_line(exc)[:200]})") from None
