"""The downloader end to end against a real HTTP server on 127.0.0.1 serving fixture files."""

from __future__ import annotations

import hashlib
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import pytest
from tests.local_http import LocalHTTPServer

from specdenoise.errors import DataError
from specdenoise.survey.download import (
    Target,
    download_many,
    fetch,
    mpajhu_targets,
    read_targets,
    sdss_targets,
    spec_filename,
)


class _Server(LocalHTTPServer):
    """Serves ``files`` (url path -> bytes) with Range support; ``truncate_once`` paths cut the
    first response short after half the body (Content-Length still announces the whole file)."""

    def __init__(self, files: dict[str, bytes], truncate_once: set[str] = frozenset(), ignore_range: bool = False):
        self.files = files
        self.truncate_once = set(truncate_once)
        self.ignore_range = ignore_range
        self.requests: list[tuple[str, str | None]] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):  # quiet
                pass

            def do_GET(self):  # noqa: N802
                rng = self.headers.get("Range")
                server.requests.append((self.path, rng))
                body = server.files.get(self.path)
                if body is None:
                    self.send_response(404)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                start = 0
                if rng and not server.ignore_range:
                    start = int(rng.split("=")[1].split("-")[0])
                    if start >= len(body):
                        self.send_response(416)
                        self.send_header("Content-Range", f"bytes */{len(body)}")
                        self.send_header("Content-Length", "0")
                        self.end_headers()
                        return
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
                else:
                    self.send_response(200)
                chunk = body[start:]
                self.send_header("Content-Length", str(len(chunk)))
                if self.path in server.truncate_once:
                    server.truncate_once.discard(self.path)
                    self.send_header("Connection", "close")
                    self.end_headers()
                    self.wfile.write(chunk[: len(chunk) // 2])
                    self.wfile.flush()
                    self.close_connection = True
                    return
                self.end_headers()
                self.wfile.write(chunk)

        super().__init__(Handler)


@pytest.fixture
def payloads():
    import numpy as np

    rng = np.random.default_rng(0)
    return {
        "/lite/0266/spec-0266-51602-0001.fits": rng.bytes(300_000),
        "/lite/0266/spec-0266-51602-0002.fits": rng.bytes(50_000),
        "/mpa/gal_info_dr7_v5_2.fit.gz": rng.bytes(120_000),
    }


def _no_sleep(_s):
    pass


def test_success_resume_and_404_in_one_batch(tmp_path, payloads):
    targets_csv = tmp_path / "targets.csv"
    targets_csv.write_text("PLATEID,MJD,FIBERID\n266,51602,1\n266,51602,2\n266,51602,3\n")
    table = read_targets(targets_csv)
    with _Server(payloads, truncate_once={"/lite/0266/spec-0266-51602-0001.fits"}) as srv:
        tg = sdss_targets(table, tmp_path / "spectra", base_url=srv.base + "/lite")
        summary = download_many(tg, workers=2, retries=2, sleep=_no_sleep)
    by = {Path(r.dest).name: r for r in summary.results}
    ok1 = by[spec_filename(266, 51602, 1)]
    assert ok1.status == "ok" and ok1.resumed and ok1.attempts == 2, ok1
    assert (tmp_path / "spectra" / "spec-0266-51602-0001.fits").read_bytes() == payloads[
        "/lite/0266/spec-0266-51602-0001.fits"
    ]
    assert by[spec_filename(266, 51602, 2)].status == "ok"
    missing = by[spec_filename(266, 51602, 3)]
    assert missing.status == "not_found" and "404" in missing.error and missing.attempts == 1
    assert not (tmp_path / "spectra" / "spec-0266-51602-0003.fits").exists()
    assert not list((tmp_path / "spectra").glob("*.part"))
    # the resumed request asked for the rest of the file only
    ranges = [r for p, r in srv.requests if p.endswith("0001.fits")]
    assert ranges[0] is None and ranges[1].startswith("bytes=")
    offset = int(ranges[1][6:-1])
    assert 0 < offset <= 150_000  # what reached the disk before the cut (whole 64 KiB blocks)
    assert summary.count("ok") == 2 and summary.count("not_found") == 1 and not summary.ok
    assert "1 not found (404)" in summary.line()


def test_interrupted_run_leaves_part_then_next_run_resumes(tmp_path, payloads):
    path = "/lite/0266/spec-0266-51602-0001.fits"
    body = payloads[path]
    dest = tmp_path / "spec.fits"
    with _Server(payloads, truncate_once={path}) as srv:
        first = fetch(Target(srv.base + path, dest), retries=0, sleep=_no_sleep)
        assert first.status == "failed" and "truncated" in first.error
        assert not dest.exists()  # never a partial file under the final name
        part = dest.with_name(dest.name + ".part")
        kept = part.stat().st_size
        assert 0 < kept <= len(body) // 2
        second = fetch(Target(srv.base + path, dest, sha256=hashlib.sha256(body).hexdigest()), retries=0)
    assert second.status == "ok" and second.resumed and second.bytes == len(body) - kept
    assert dest.read_bytes() == body and not part.exists()


def test_server_ignoring_range_restarts_cleanly(tmp_path, payloads):
    path = "/lite/0266/spec-0266-51602-0002.fits"
    dest = tmp_path / "x.fits"
    dest.with_name("x.fits.part").write_bytes(b"garbage-prefix")
    with _Server(payloads, ignore_range=True) as srv:
        r = fetch(Target(srv.base + path, dest), retries=0)
    assert r.status == "ok" and not r.resumed
    assert dest.read_bytes() == payloads[path]


def test_size_mismatch_detected(tmp_path, payloads):
    path = "/mpa/gal_info_dr7_v5_2.fit.gz"
    dest = tmp_path / "gal_info_dr7_v5_2.fit.gz"
    with _Server(payloads) as srv:
        r = fetch(Target(srv.base + path, dest, size=len(payloads[path]) + 10), retries=3, sleep=_no_sleep)
    assert r.status == "failed" and "size mismatch" in r.error and r.attempts == 1
    assert not dest.exists() and not dest.with_name(dest.name + ".part").exists()


def test_checksum_mismatch_fails_after_retries(tmp_path, payloads):
    path = "/lite/0266/spec-0266-51602-0002.fits"
    dest = tmp_path / "y.fits"
    with _Server(payloads) as srv:
        r = fetch(Target(srv.base + path, dest, md5="0" * 32), retries=1, sleep=_no_sleep)
    assert r.status == "failed" and "md5 mismatch" in r.error and r.attempts == 2
    assert not dest.exists()


def test_existing_complete_file_is_skipped(tmp_path, payloads):
    path = "/mpa/gal_info_dr7_v5_2.fit.gz"
    with _Server(payloads) as srv:
        tg = mpajhu_targets(tmp_path, base_url=srv.base + "/mpa", files=["gal_info_dr7_v5_2.fit.gz"])
        s1 = download_many(tg, workers=1)
        s2 = download_many(tg, workers=1)
    assert s1.results[0].status == "ok" and s2.results[0].status == "skipped"
    assert len([p for p, _ in srv.requests if p == path]) == 1
    assert (tmp_path / "gal_info_dr7_v5_2.fit.gz").read_bytes() == payloads[path]


def test_connection_refused_is_retried_and_reported(tmp_path):
    waits = []
    r = fetch(
        Target("http://127.0.0.1:9/none.fits", tmp_path / "n.fits"),
        retries=2,
        backoff_s=0.5,
        timeout=2,
        sleep=waits.append,
    )
    assert r.status == "failed" and r.attempts == 3 and waits == [0.5, 1.0]


def test_bad_target_list(tmp_path):
    bad = tmp_path / "t.csv"
    bad.write_text("plate,fiber\n1,2\n")
    with pytest.raises(DataError, match="missing column.*mjd"):
        read_targets(bad)
