"""HTTP helpers of the downloader: redirects followed only where allowed, file digests.

``requests`` follows redirects to any host by default; :func:`open_url` follows them by hand,
only to the URL's own host or a configured one (``data.download.allowed_hosts``), never from
https to http, at most :data:`MAX_REDIRECTS` times, and returns the final URL so that it can be
reported.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any
from urllib.parse import urljoin, urlsplit

#: HTTP statuses that redirect.
REDIRECTS = (301, 302, 303, 307, 308)
MAX_REDIRECTS = 5


class RedirectRefused(Exception):
    """A redirect to a host that is not allowed, a downgrade to http, or too many redirects."""


def host_of(url: str) -> str:
    """The lower-case host name of ``url``."""
    return (urlsplit(url).hostname or "").lower()


def open_url(
    session: Any, url: str, headers: dict, timeout: float, allowed_hosts: tuple[str, ...] = ()
) -> tuple[Any, str]:
    """GET ``url`` (streamed) following redirects only to allowed hosts.

    Returns
    -------
    response, final_url

    Raises
    ------
    RedirectRefused
        Naming both URLs.
    """
    current = url
    for _ in range(MAX_REDIRECTS + 1):
        resp = session.get(current, headers=headers, stream=True, timeout=timeout, allow_redirects=False)
        location = resp.headers.get("Location")
        if resp.status_code not in REDIRECTS or not location:
            return resp, current
        resp.close()
        nxt = urljoin(current, location)
        host = host_of(nxt)
        if host != host_of(url) and host not in allowed_hosts:
            raise RedirectRefused(
                f"redirected from {url} to {nxt}: host {host} is not allowed (add it to data.download.allowed_hosts)"
            )
        if urlsplit(current).scheme == "https" and urlsplit(nxt).scheme != "https":
            raise RedirectRefused(f"redirected from {url} to {nxt}: https to {urlsplit(nxt).scheme} refused")
        current = nxt
    raise RedirectRefused(f"more than {MAX_REDIRECTS} redirects from {url} (last {current})")


def digest(path: Path, algo: str) -> str:
    """Hex digest (``sha256``, ``md5``, ...) of a file, read in 1 MiB blocks."""
    h = hashlib.new(algo)
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()
