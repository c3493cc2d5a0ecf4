"""The output folder of ``specdenoise denoise``: checked before any work, locked while in use,
and cleared of the temporary files that killed runs left behind.

* :func:`check_out_dir` refuses (:class:`~specdenoise.errors.ConfigError`, exit 2, naming the
  path) a folder under ``/proc``, ``/sys`` or ``/dev``, a path that exists and is not a folder,
  a symlink loop, a folder that cannot be created or written, and a folder where an output
  (``<stem>.<id>.fits``, ``<stem>.done.json``, ``summary.json``) could replace one of the inputs.
* :class:`OutputLock` (``<out>/.specdenoise.lock``, created with ``O_EXCL``, holding the pid,
  host and start time as JSON) keeps two runs out of one folder. A second run does **not
  wait**: it stops at once with a one-line :class:`~specdenoise.errors.ConfigError` naming the
  lock and its holder (exit 2), before reading any input, so it neither processes the first
  run's files again nor replaces its ``summary.json``. A lock whose process is dead (same host)
  is taken over with a log line; a lock from another host is never broken (remove it by hand
  once that run is gone).
* :func:`clean_stale_temps` removes the hidden temporary files
  (``.<name>.p<pid>.<random><suffix>``, see :func:`specdenoise.io.atomic_path`) of processes
  that are no longer alive, e.g. a ``denoise`` or a Dask worker killed by ``kill -9``; files of
  live processes (a run in progress) are kept.
"""

from __future__ import annotations

import errno
import fnmatch
import json
import logging
import os
import re
import socket
import time
from collections.abc import Iterable
from pathlib import Path
from types import TracebackType

from specdenoise.errors import ConfigError, DataError
from specdenoise.io import TEMP_RE, pid_alive, stale_temp
from specdenoise.survey.resume import file_stem

log = logging.getLogger("specdenoise.denoise")

LOCK_NAME = ".specdenoise.lock"
#: Pseudo file systems no output may go to.
FORBIDDEN_ROOTS = (Path("/proc"), Path("/sys"), Path("/dev"))


def _resolve(out: Path) -> Path:
    try:
        return out.resolve()
    except (RuntimeError, OSError) as exc:  # a symlink loop: RuntimeError in 3.11, OSError (ELOOP) later
        raise ConfigError(f"--out {out}: cannot be resolved ({type(exc).__name__}: symlink loop?)") from None


def check_out_dir(out: Path, inputs: Iterable[Path] = (), output_names: Iterable[str] = ()) -> Path:
    """Check (and create) the output folder before any work; return it resolved.

    Parameters
    ----------
    out : Path
        The ``--out`` folder.
    inputs : iterable of Path
        The input files; none of them may be in ``out`` under a name an output could take.
    output_names : iterable of str
        Extra output names (glob patterns) beside ``summary.json`` and the per-input
        ``<stem>.done.json`` / ``<stem>.*.fits``.

    Raises
    ------
    ConfigError
        Naming ``out`` (and the input at risk).
    """
    out = Path(out)
    real = _resolve(out)
    for root in FORBIDDEN_ROOTS:
        if real == root or root in real.parents:
            raise ConfigError(f"--out {out}: is under {root}, a system folder, not an output folder")
    if out.is_symlink() and not out.exists():
        raise ConfigError(f"--out {out}: is a dangling symbolic link")
    if real.exists() and not real.is_dir():
        raise ConfigError(f"--out {out}: exists and is not a folder")
    try:
        real.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"--out {out}: cannot create the folder ({exc.strerror or exc})") from None
    probe = real / f".specdenoise-probe.p{os.getpid()}"
    try:
        fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        os.close(fd)
        probe.unlink()
    except OSError as exc:
        raise ConfigError(f"--out {out}: folder is not writable ({exc.strerror or exc})") from None
    _check_inputs_safe(out, real, list(inputs), list(output_names))
    return real


def _check_inputs_safe(out: Path, real: Path, inputs: list[Path], extra: list[str]) -> None:
    """An input inside ``out`` whose name an output could take would be overwritten: refuse."""
    stems = [file_stem(Path(p)) for p in inputs]
    patterns = ["summary.json", LOCK_NAME, *extra]
    for stem in stems:
        patterns += [f"{glob_escape(stem)}.done.json", f"{glob_escape(stem)}.*.fits"]
    for p in map(Path, inputs):
        try:
            rp = p.resolve()
        except (RuntimeError, OSError):
            continue  # the reader reports it as a bad input
        if rp.parent != real:
            continue
        if any(fnmatch.fnmatchcase(rp.name, pat) for pat in patterns):
            raise ConfigError(f"--out {out}: input {p} is in that folder under a name an output would take")


def glob_escape(text: str) -> str:
    """``text`` with the glob metacharacters ``*?[`` quoted, for :mod:`fnmatch` patterns."""
    return re.sub(r"([*?\[])", r"[\1]", text)


def clean_stale_temps(folder: Path) -> list[Path]:
    """Remove the temporary files of dead processes in ``folder`` (not recursive); return them.

    Only names :func:`specdenoise.io.atomic_path` writes (``.<name>.p<pid>.<random>...``) are
    considered; one log line names each file removed.
    """
    removed = []
    folder = Path(folder)
    if not folder.is_dir():
        return removed
    for p in sorted(folder.iterdir()):
        if not stale_temp(p):
            continue
        try:
            p.unlink()
        except FileNotFoundError:
            continue
        log.info("removed %s, a temporary file of a run that was killed (pid %s)", p, TEMP_RE.match(p.name).group(1))
        removed.append(p)
    return removed


class OutputLock:
    """``<folder>/.specdenoise.lock`` held for the life of a run (a context manager).

    Created with ``O_CREAT | O_EXCL``; holds ``{"pid", "host", "started", "command"}``. If
    the lock exists and its process (on this host) is dead, it is taken over with a log line;
    otherwise :meth:`acquire` raises :class:`ConfigError` naming the lock file and its holder
    (the second run stops; it does not wait). A lock file that is a folder or unreadable is a
    :class:`DataError` naming it.
    """

    def __init__(self, folder: Path, command: str = "denoise") -> None:
        self.path = Path(folder) / LOCK_NAME
        self.command = command
        self.held = False

    def _holder(self) -> dict:
        if self.path.is_dir() or self.path.is_symlink():
            raise DataError(f"{self.path}: lock file is a folder or a link; remove it")
        try:
            rec = json.loads(self.path.read_text() or "{}")
        except (OSError, UnicodeDecodeError, json.JSONDecodeError):
            rec = {}
        return rec if isinstance(rec, dict) else {}

    def acquire(self) -> OutputLock:
        record = {"pid": os.getpid(), "host": socket.gethostname(), "started": time.time(), "command": self.command}
        for _ in range(3):
            try:
                fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            except FileExistsError:
                holder = self._holder()
                pid, host = holder.get("pid"), holder.get("host")
                if not isinstance(pid, int) or host != record["host"] or pid_alive(pid):
                    who = f"pid {pid} on {host}" if isinstance(pid, int) else "an unknown process"
                    raise ConfigError(
                        f"{self.path}: output folder is locked by another run ({who}); wait for it to finish, "
                        "or remove the lock if that run is gone"
                    ) from None
                log.warning("%s: taking over the lock of pid %d, which is no longer running", self.path, pid)
                self.path.unlink(missing_ok=True)
                continue
            except OSError as exc:
                if exc.errno == errno.EISDIR:
                    raise DataError(f"{self.path}: lock file is a folder; remove it") from None
                raise ConfigError(f"{self.path}: cannot create the lock ({exc.strerror or exc})") from None
            with os.fdopen(fd, "w") as fh:
                json.dump(record, fh)
            self.held = True
            return self
        raise ConfigError(f"{self.path}: could not take the lock (another run keeps taking it)")

    def release(self) -> None:
        if self.held:
            self.held = False
            try:
                if self._holder().get("pid") == os.getpid():
                    self.path.unlink()
            except (OSError, DataError):
                pass

    def __enter__(self) -> OutputLock:
        return self.acquire()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.release()
