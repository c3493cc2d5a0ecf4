"""Download SDSS spectra (by plate-mjd-fiber) and the MPA-JHU DR7 catalogues.

Each file is fetched to ``<dest>.part`` and renamed onto ``<dest>`` only once complete and
checked, so an interrupted batch never leaves a file that looks finished:

* **retries** with backoff (``backoff_s * 2**attempt``) on connection errors, timeouts, HTTP
  5xx / 429 and truncated transfers; a 404 (or other 4xx) is reported at once, never retried;
* **resume**: a ``.part`` left by an earlier attempt is continued with an HTTP ``Range``
  request (a server that ignores it sends the whole file, which replaces the part);
* **checks**: the size against ``Content-Length`` / ``Content-Range``, size and sha256 / md5
  of a manifest when known;
* **concurrency limit**: a thread pool of ``workers``; a **summary**: every file is ``ok``,
  ``skipped`` (there and consistent with the manifest), ``not_found`` or ``failed`` (why).

URLs (both bases configurable in ``params.yaml`` ``data.download``): spec-lite files at the SDSS
Science Archive Server, ``{base}/{plate:04d}/spec-{plate:04d}-{mjd:05d}-{fiber:04d}.fits``
with base ``https://data.sdss.org/sas/dr17/sdss/spectro/redux/26/spectra/lite`` (the DR8+
reduction of the SDSS-I/II plates the MPA-JHU DR7 catalogue covers); the catalogues at
``https://wwwmpa.mpa-garching.mpg.de/SDSS/DR7/Data/<file>``.
"""

from __future__ import annotations

import logging
import os
import re
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import requests

from specdenoise.errors import DataError
from specdenoise.survey.http import RedirectRefused, digest, open_url

log = logging.getLogger(__name__)

SDSS_BASE_URL = "https://data.sdss.org/sas/dr17/sdss/spectro/redux/26/spectra/lite"
SPEC_TEMPLATE = "{base}/{plate:04d}/spec-{plate:04d}-{mjd:05d}-{fiber:04d}.fits"
MPAJHU_BASE_URL = "https://wwwmpa.mpa-garching.mpg.de/SDSS/DR7/Data"
MPAJHU_FILES = (
    "gal_info_dr7_v5_2.fit.gz",
    "gal_line_dr7_v5_2.fit.gz",
    "totlgm_dr7_v5_2b.fit.gz",
    "gal_totsfr_dr7_v5_2.fits.gz",
    "gal_indx_dr7_v5_2.fit.gz",
)
CHUNK = 1 << 16


def spec_filename(plate: int, mjd: int, fiber: int) -> str:
    """The spec-lite file name of one spectrum: ``spec-PPPP-MMMMM-FFFF.fits``."""
    return f"spec-{int(plate):04d}-{int(mjd):05d}-{int(fiber):04d}.fits"


@dataclass(frozen=True)
class Target:
    """One file to fetch: its URL, destination and what is known of it."""

    url: str
    dest: Path
    size: int | None = None
    sha256: str | None = None
    md5: str | None = None


@dataclass
class Result:
    """Outcome of one file: ``status`` is ok, skipped, not_found or failed."""

    url: str
    dest: str
    status: str
    bytes: int = 0
    attempts: int = 0
    resumed: bool = False
    error: str | None = None
    final_url: str | None = None


@dataclass
class Summary:
    """Outcome of a batch."""

    results: list[Result] = field(default_factory=list)
    seconds: float = 0.0

    def count(self, status: str) -> int:
        return sum(r.status == status for r in self.results)

    @property
    def ok(self) -> bool:
        """True when every file is present (downloaded or already there)."""
        return all(r.status in ("ok", "skipped") for r in self.results)

    def line(self) -> str:
        """One-line summary: counts per status and bytes."""
        mb = sum(r.bytes for r in self.results) / 1e6
        return (
            f"{len(self.results)} file(s): {self.count('ok')} downloaded, {self.count('skipped')} already present, "
            f"{self.count('not_found')} not found (404), {self.count('failed')} failed; "
            f"{mb:.1f} MB in {self.seconds:.1f} s"
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "n": len(self.results),
            "counts": {s: self.count(s) for s in ("ok", "skipped", "not_found", "failed")},
            "seconds": self.seconds,
            "results": [asdict(r) for r in self.results],
        }


class _Retry(Exception):
    """A transient failure: try again (keeping the partial file)."""


class _Fatal(Exception):
    """A permanent failure: report it, do not retry."""


class _NotFound(_Fatal):
    """HTTP 404 (told by the status code, never by the message: a URL may hold "404")."""


def _check_checksums(path: Path, t: Target) -> None:
    for algo, want in (("sha256", t.sha256), ("md5", t.md5)):
        if want:
            got = digest(path, algo)
            if got.lower() != want.lower():
                raise _Retry(f"{algo} mismatch (got {got[:12]}..., expected {want[:12]}...)")


def _total_size(resp: Any, offset: int) -> int | None:
    """Full file size from Content-Range (206) or Content-Length (200)."""
    if resp.status_code == 206:
        m = re.match(r"bytes\s+(\d+)-(\d+)/(\d+|\*)", resp.headers.get("Content-Range", ""))
        if not m or int(m.group(1)) != offset:
            raise _Retry(f"bad Content-Range {resp.headers.get('Content-Range')!r} for offset {offset}")
        if m.group(3) != "*":
            return int(m.group(3))
        cl = resp.headers.get("Content-Length")
        return offset + int(cl) if cl is not None else None
    cl = resp.headers.get("Content-Length")
    return int(cl) if cl is not None else None


def _fetch_once(session: Any, t: Target, timeout: float, res: Result, allowed_hosts: tuple[str, ...] = ()) -> None:
    part = t.dest.with_name(t.dest.name + ".part")
    offset = part.stat().st_size if part.exists() else 0
    if t.size is not None and offset > t.size:
        part.unlink()
        offset = 0
    headers = {"Range": f"bytes={offset}-"} if offset else {}

    try:
        try:
            resp, res.final_url = open_url(session, t.url, headers, timeout, allowed_hosts)
        except RedirectRefused as exc:
            raise _Fatal(str(exc)) from None
        if res.final_url != t.url:
            log.info("%s: redirected to %s", t.url, res.final_url)
        with resp:
            code = resp.status_code
            if code == 416 and offset:
                part.unlink()  # our part is longer than the file or stale: start again
                raise _Retry("HTTP 416 on resume; restarting from scratch")
            if code == 404:
                raise _NotFound("HTTP 404 not found")
            if code == 429 or code >= 500:
                raise _Retry(f"HTTP {code}")
            if code >= 400:
                raise _Fatal(f"HTTP {code}")
            if code not in (200, 206):
                raise _Retry(f"unexpected HTTP {code}")
            if code == 200:
                offset = 0  # whole file: the server ignored (or we sent no) Range
            else:
                res.resumed = True
            total = _total_size(resp, offset)
            if t.size is not None and total is not None and total != t.size:
                raise _Fatal(f"size mismatch: server reports {total} bytes, manifest says {t.size}")
            with open(part, "ab" if offset else "wb") as fh:
                for block in resp.iter_content(CHUNK):
                    fh.write(block)
                    res.bytes += len(block)
    except requests.exceptions.ChunkedEncodingError:
        got = part.stat().st_size if part.exists() else 0
        raise _Retry(f"truncated transfer: connection broken after {got} bytes on disk") from None
    except requests.exceptions.RequestException as exc:  # connection refused / reset, timeout
        raise _Retry(f"{type(exc).__name__}: {exc}") from None
    got = part.stat().st_size
    expected = total if total is not None else t.size
    if expected is not None and got < expected:
        raise _Retry(f"truncated transfer: {got} of {expected} bytes")
    if expected is not None and got > expected:
        part.unlink()
        raise _Retry(f"size mismatch: received {got} bytes, expected {expected}")
    if t.size is not None and got != t.size:
        part.unlink()
        raise _Fatal(f"size mismatch: received {got} bytes, manifest says {t.size}")
    try:
        _check_checksums(part, t)
    except _Retry:
        part.unlink()
        raise
    os.replace(part, t.dest)


def fetch(
    t: Target,
    retries: int = 3,
    backoff_s: float = 1.0,
    timeout: float = 60.0,
    session: Any | None = None,
    sleep: Callable[[float], None] = time.sleep,
    allowed_hosts: Iterable[str] = (),
) -> Result:
    """Fetch one file with retries, resume and checks; never raises for network or HTTP errors.

    Redirects are followed only to the URL's own host or one of ``allowed_hosts``
    (``data.download.allowed_hosts``); any other is a failure naming both URLs. The URL the
    data finally came from is ``Result.final_url``.

    Parameters
    ----------
    t : Target
    retries : int
        Retries after the first attempt (transient failures only).
    backoff_s : float
        Wait before retry k is ``backoff_s * 2**k`` seconds.
    timeout : float
        Connect / read timeout in seconds.
    session : requests.Session, optional
    sleep : callable
        Used between attempts (tests pass a no-op).
    allowed_hosts : iterable of str
        Hosts a redirect may lead to besides the URL's own.

    Returns
    -------
    Result
    """
    res = Result(url=t.url, dest=str(t.dest), status="failed")
    if t.dest.exists() and (t.size is None or t.dest.stat().st_size == t.size):
        try:
            _check_checksums(t.dest, t)
            res.status = "skipped"
            return res
        except _Retry as exc:
            log.warning("%s: present but %s; downloading again", t.dest, exc)
    t.dest.parent.mkdir(parents=True, exist_ok=True)
    own = session is None
    session = session or requests.Session()
    try:
        for attempt in range(retries + 1):
            res.attempts = attempt + 1
            try:
                _fetch_once(session, t, timeout, res, tuple(h.lower() for h in allowed_hosts))
                res.status, res.error = "ok", None
                return res
            except _Fatal as exc:
                res.error = str(exc)
                res.status = "not_found" if isinstance(exc, _NotFound) else "failed"
                return res
            except (_Retry, OSError) as exc:
                res.error = str(exc)
                if attempt < retries:
                    wait = backoff_s * 2**attempt
                    log.info("%s: %s; retry %d/%d in %.1f s", t.url, exc, attempt + 1, retries, wait)
                    sleep(wait)
        return res
    finally:
        if own:
            session.close()


def download_many(
    targets: Iterable[Target],
    workers: int = 4,
    retries: int = 3,
    backoff_s: float = 1.0,
    timeout: float = 60.0,
    sleep: Callable[[float], None] = time.sleep,
    progress: Callable[[Result], None] | None = None,
    allowed_hosts: tuple[str, ...] = (),
) -> Summary:
    """Fetch many files with at most ``workers`` at a time; every outcome goes in the summary."""
    targets = list(targets)
    dests = [t.dest for t in targets]
    if len(set(dests)) != len(dests):
        raise DataError("download: two targets share one destination file")
    if workers < 1:
        raise DataError(f"download: workers must be >= 1 (got {workers})")
    local = threading.local()
    kw = {
        "retries": retries,
        "backoff_s": backoff_s,
        "timeout": timeout,
        "sleep": sleep,
        "allowed_hosts": allowed_hosts,
    }

    def one(t: Target) -> Result:
        if not hasattr(local, "session"):
            local.session = requests.Session()
        r = fetch(t, session=local.session, **kw)
        if progress:
            progress(r)
        return r

    t0 = time.perf_counter()
    with ThreadPoolExecutor(max_workers=workers) as pool:
        results = list(pool.map(one, targets))
    return Summary(results=results, seconds=time.perf_counter() - t0)


def _col(df: Any, *names: str) -> str | None:
    lower = {c.lower(): c for c in df.columns}
    for n in names:
        if n.lower() in lower:
            return lower[n.lower()]
    return None


def read_targets(path: str | Path) -> Any:
    """Read a target list (CSV or Parquet) with plate, mjd and fiber columns.

    Accepted names (any case): ``plate``/``plateid``, ``mjd``, ``fiber``/``fiberid``; optional
    ``size``, ``sha256``, ``md5``. Returns a DataFrame with ``plate``, ``mjd``, ``fiber`` (int)
    and the optional columns that exist.
    """
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: target list not found")
    try:
        df = pd.read_parquet(path) if path.suffix == ".parquet" else pd.read_csv(path)
    except Exception as exc:  # pandas/pyarrow raise many unrelated types for bad files
        raise DataError(f"{path}: not a readable CSV/Parquet table ({type(exc).__name__})") from None
    cols = {
        k: _col(df, *alts)
        for k, alts in (("plate", ("plate", "plateid")), ("mjd", ("mjd",)), ("fiber", ("fiber", "fiberid")))
    }
    missing = [k for k, v in cols.items() if v is None]
    if missing:
        raise DataError(f"{path}: missing column(s) {', '.join(missing)} (need plate, mjd, fiber)")
    out = pd.DataFrame({k: df[v] for k, v in cols.items()})
    if out.isna().any().any():
        raise DataError(f"{path}: empty plate/mjd/fiber value(s)")
    out = out.astype(np.int64)
    if ((out["plate"] <= 0) | (out["mjd"] <= 0) | (out["fiber"] <= 0) | (out["fiber"] > 1000)).any():
        raise DataError(f"{path}: plate/mjd/fiber out of range (plate > 0, mjd > 0, 1 <= fiber <= 1000)")
    for opt in ("size", "sha256", "md5"):
        c = _col(df, opt)
        if c is not None:
            out[opt] = df[c]
    return out.drop_duplicates(["plate", "mjd", "fiber"]).reset_index(drop=True)


def _opt(row: Any, key: str) -> Any:
    v = row.get(key) if hasattr(row, "get") else None
    if v is None:
        return None
    try:
        if pd.isna(v):
            return None
    except (TypeError, ValueError):
        pass
    return int(v) if key == "size" else str(v)


def sdss_targets(
    table: Any, out_dir: str | Path, base_url: str = SDSS_BASE_URL, template: str = SPEC_TEMPLATE
) -> list[Target]:
    """Targets for the spec-lite files of a target table (from :func:`read_targets`)."""
    out_dir = Path(out_dir)
    base = base_url.rstrip("/")
    targets = []
    for row in table.to_dict("records"):
        p, m, f = int(row["plate"]), int(row["mjd"]), int(row["fiber"])
        url = template.format(base=base, plate=p, mjd=m, fiber=f)
        targets.append(
            Target(url, out_dir / spec_filename(p, m, f), _opt(row, "size"), _opt(row, "sha256"), _opt(row, "md5"))
        )
    return targets


def mpajhu_targets(
    out_dir: str | Path, base_url: str = MPAJHU_BASE_URL, files: Iterable[str] = MPAJHU_FILES
) -> list[Target]:
    """Targets for the MPA-JHU DR7 catalogue files (no published checksums: size checks only)."""
    out_dir = Path(out_dir)
    base = base_url.rstrip("/")
    return [Target(f"{base}/{name}", out_dir / name) for name in files]
