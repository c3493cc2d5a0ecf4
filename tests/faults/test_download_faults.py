"""Fault cases of the downloaders against a real HTTP server on 127.0.0.1: redirects to another
host are refused naming both URLs (same-host and configured hosts are followed, the final URL
reported), and package files are checked against the index's and the pinned sha256."""

from __future__ import annotations

import hashlib
import json
from http.server import BaseHTTPRequestHandler

import pytest
from tests.faults.harness import cli, fingerprint
from tests.local_http import LocalHTTPServer

from specdenoise.errors import EXIT_PARTIAL, DataError
from specdenoise.io import package_download
from specdenoise.survey.download import Target, fetch

BODY = bytes(range(256)) * 400
SPEC = "/lite/0266/spec-0266-51602-0001.fits"


class Server(LocalHTTPServer):
    """``routes``: path -> bytes (200, JSON when the path ends in /) or ("redirect", location)."""

    def __init__(self, routes: dict):
        self.routes = routes
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_GET(self):  # noqa: N802
                route = server.routes.get(self.path)
                if isinstance(route, tuple):
                    self.send_response(302)
                    self.send_header("Location", route[1])
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                if route is None:
                    self.send_response(404)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                self.send_response(200)
                self.send_header("Content-Length", str(len(route)))
                self.end_headers()
                self.wfile.write(route)

        super().__init__(Handler)


def _fetch(url, dest, **kw):
    return fetch(Target(url, dest), retries=1, sleep=lambda _s: None, **kw)


def test_redirect_to_another_host_is_refused_naming_both(tmp_path):
    with Server({}) as srv:
        srv.routes[SPEC] = ("redirect", f"http://localhost:{srv.port}/elsewhere.fits")
        srv.routes["/elsewhere.fits"] = BODY
        res = _fetch(srv.base + SPEC, tmp_path / "a.fits")
    assert res.status == "failed" and res.attempts == 1
    assert srv.base + SPEC in res.error and f"http://localhost:{srv.port}/elsewhere.fits" in res.error
    assert list(tmp_path.iterdir()) == []


def test_redirect_to_a_configured_host_is_followed_and_reported(tmp_path):
    with Server({}) as srv:
        final = f"http://localhost:{srv.port}/elsewhere.fits"
        srv.routes[SPEC] = ("redirect", final)
        srv.routes["/elsewhere.fits"] = BODY
        res = _fetch(srv.base + SPEC, tmp_path / "a.fits", allowed_hosts=["LOCALHOST"])
    assert res.status == "ok" and res.final_url == final and (tmp_path / "a.fits").read_bytes() == BODY


def test_same_host_redirect_is_followed(tmp_path):
    with Server({SPEC: ("redirect", "/moved.fits"), "/moved.fits": BODY}) as srv:
        res = _fetch(srv.base + SPEC, tmp_path / "a.fits")
    assert res.status == "ok" and res.final_url == srv.base + "/moved.fits"


def test_redirect_loop_stops(tmp_path):
    with Server({"/a": ("redirect", "/b"), "/b": ("redirect", "/a")}) as srv:
        res = _fetch(srv.base + "/a", tmp_path / "a.fits")
    assert res.status == "failed" and "redirects" in res.error and list(tmp_path.iterdir()) == []


def test_cli_download_redirected_off_host(tmp_path):
    targets = tmp_path / "targets.csv"
    targets.write_text("plate,mjd,fiber\n266,51602,1\n")
    with Server({}) as srv:
        srv.routes[SPEC] = ("redirect", f"http://localhost:{srv.port}/x.fits")
        before = fingerprint(tmp_path)
        res = cli(
            "data", "download-sdss", "--targets", targets, "--out", tmp_path / "spectra", "--base-url",
            srv.base + "/lite", "--retries", "0", cwd=tmp_path,
        )  # fmt: skip
    assert res.code == EXIT_PARTIAL and "Traceback" not in res.stderr
    assert f"http://localhost:{srv.port}/x.fits" in res.stdout and srv.base + SPEC in res.stdout
    assert {k: v for k, v in fingerprint(tmp_path).items() if "spectra" not in k} == before
    assert not list((tmp_path / "spectra").glob("*"))


def _index(srv, filename, body, published):
    entry = {"filename": filename, "url": f"/files/{filename}", "hashes": {"sha256": published}}
    srv.routes["/simple/pkg/"] = json.dumps({"files": [entry]}).encode()
    srv.routes[f"/files/{filename}"] = body


def test_package_matching_both_hashes(tmp_path):
    sha = hashlib.sha256(BODY).hexdigest()
    with Server({}) as srv:
        _index(srv, "pkg-1.0.tar.gz", BODY, sha)
        p = package_download("pkg==1.0", tmp_path, sdist=True, sha256=sha, index_url=srv.base + "/simple")
    assert p.read_bytes() == BODY and sorted(x.name for x in tmp_path.iterdir()) == ["pkg-1.0.tar.gz"]


def test_package_not_matching_the_index_hash_is_removed(tmp_path):
    wrong = "0" * 64
    with Server({}) as srv:
        _index(srv, "pkg-1.0.tar.gz", BODY, wrong)
        with pytest.raises(DataError) as err:
            package_download("pkg==1.0", tmp_path, sdist=True, index_url=srv.base + "/simple")
    msg = str(err.value)
    assert "pkg-1.0.tar.gz" in msg and wrong in msg and hashlib.sha256(BODY).hexdigest() in msg
    assert list(tmp_path.iterdir()) == []


def test_package_not_matching_the_pinned_hash_is_removed(tmp_path):
    pinned = "f" * 64
    with Server({}) as srv:
        _index(srv, "pkg-1.0-py3-none-any.whl", BODY, hashlib.sha256(BODY).hexdigest())
        with pytest.raises(DataError, match=f"pinned sha256 {pinned}"):
            package_download("pkg==1.0", tmp_path, sha256=pinned, index_url=srv.base + "/simple")
    assert list(tmp_path.iterdir()) == []


def test_package_version_not_in_the_index(tmp_path):
    with Server({}) as srv:
        _index(srv, "pkg-1.0.tar.gz", BODY, hashlib.sha256(BODY).hexdigest())
        with pytest.raises(DataError, match=r"pkg==2\.0: no source distribution pkg-2\.0\.tar\.gz"):
            package_download("pkg==2.0", tmp_path, sdist=True, index_url=srv.base + "/simple")


def test_package_requirement_must_pin_a_version():
    with pytest.raises(DataError, match="pkg>=1: expected NAME==VERSION"):
        package_download("pkg>=1", "/nonexistent")


def test_emiles_and_desi_downloads_pass_their_pinned_hash(tmp_path, monkeypatch):
    from specdenoise.config import parse_params
    from specdenoise.data import desi
    from specdenoise.physics import templates

    asked = []

    def record(requirement, dest, sdist=False, sha256=None, index_url=None):
        asked.append((requirement, sdist, sha256))
        raise DataError(f"{requirement}: cannot download the test stops here")

    monkeypatch.setattr(templates, "package_download", record)
    monkeypatch.setattr(desi, "package_download", record)
    with pytest.raises(DataError):
        templates.build_emiles(tmp_path / "e.npz")
    with pytest.raises(DataError):
        desi.fetch_coadds(parse_params({}).mzr.desi, tmp_path / "desi")
    assert asked == [
        ("ppxf==8.2.6", True, templates.EMILES_SHA256),
        ("fastspecfit==3.6.1", False, desi.KNOWN_SHA256["fastspecfit==3.6.1"]),
    ]
    assert not (tmp_path / "e.npz").exists()
