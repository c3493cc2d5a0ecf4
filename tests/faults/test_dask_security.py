"""The local Dask cluster of ``denoise`` is TLS-secured with temporary credentials: a client
without them cannot connect; --scheduler / --security-file faults are one-line usage errors."""

from __future__ import annotations

import pytest
from tests.faults import survey_cases
from tests.faults.harness import assert_fails, cli, fingerprint
from tests.faults.survey_cases import good_spec

from specdenoise.errors import EXIT_OK, EXIT_USAGE

pca_model = survey_cases.pca_model  # the module's fixture


@pytest.fixture(scope="module")
def cluster():
    from specdenoise.survey.cluster import local_cluster

    c = local_cluster(1)
    yield c
    c.close()


#: Another local process trying to use the scheduler: without credentials, with credentials the
#: cluster did not issue, and over plain TCP. Prints one word per attempt.
INTRUDER = """
import sys
from distributed import Client
from distributed.security import Security
addr = sys.argv[1]
for address, security in ((addr, None), (addr, Security.temporary()), (addr.replace("tls://", "tcp://"), None)):
    try:
        with Client(address, timeout="4s", security=security) as c:
            c.submit(print, "pwned").result()
        print("connected")
    except Exception as exc:
        print("refused:" + type(exc).__name__)
"""


def test_local_cluster_speaks_tls_only(cluster):
    import subprocess
    import sys

    from distributed import Client

    addr = cluster.scheduler_address
    assert addr.startswith("tls://127.0.0.1:")
    res = subprocess.run([sys.executable, "-c", INTRUDER, addr], capture_output=True, text=True, timeout=120)
    lines = res.stdout.split()
    assert len(lines) == 3 and all(ln.startswith("refused:") for ln in lines), res.stdout + res.stderr[-2000:]
    with Client(cluster) as client:  # the run's own client, with the run's credentials
        assert client.submit(sum, [1, 2]).result() == 3


def _write_credentials(tmp_path, security):
    paths = {}
    for key in ("tls_ca_file", "tls_client_cert", "tls_client_key"):
        p = tmp_path / f"{key}.pem"
        p.write_text(getattr(security, key))
        paths[key] = str(p)
    return paths


def test_scheduler_with_security_file_runs(tmp_path, cluster, pca_model):
    import yaml

    f = good_spec(tmp_path / "in" / "a.fits")
    sec = tmp_path / "security.yaml"
    sec.write_text(yaml.safe_dump({**_write_credentials(tmp_path, cluster.security), "require_encryption": True}))
    res = cli(
        "denoise", f, "--model", pca_model, "--out", tmp_path / "out", "--scheduler", cluster.scheduler_address,
        "--security-file", sec, cwd=tmp_path,
    )  # fmt: skip
    assert res.code == EXIT_OK, res.stderr
    assert (tmp_path / "out" / "a.denoised.fits").exists()


def test_tls_scheduler_without_credentials_is_refused(tmp_path, cluster, pca_model):
    f = good_spec(tmp_path / "in" / "a.fits")
    res = cli("denoise", f, "--model", pca_model, "--out", tmp_path / "out", "--scheduler", cluster.scheduler_address)
    assert res.code != EXIT_OK and "Traceback" not in res.stderr
    assert cluster.scheduler_address in res.error_lines[0]
    assert not list((tmp_path / "out").glob("*.fits"))


def _usage(tmp_path, model, *extra):
    f = good_spec(tmp_path / "in" / "a.fits")
    before = fingerprint(tmp_path)
    res = cli("denoise", f, "--model", model, "--out", tmp_path / "out", *extra, cwd=tmp_path)
    return res, before


@pytest.mark.parametrize("scheduler", ["http://127.0.0.1:8786", "127.0.0.1:8786"])
def test_scheduler_of_another_protocol(tmp_path, pca_model, scheduler):
    res, _ = _usage(tmp_path, pca_model, "--scheduler", scheduler)
    assert_fails(res, EXIT_USAGE, "--scheduler", scheduler)


def test_security_file_missing(tmp_path, pca_model):
    res, _ = _usage(tmp_path, pca_model, "--scheduler", "tls://127.0.0.1:1", "--security-file", tmp_path / "no.yaml")
    assert_fails(res, EXIT_USAGE, str(tmp_path / "no.yaml"))


def test_security_file_with_unknown_key(tmp_path, pca_model):
    sec = tmp_path / "sec.yaml"
    sec.write_text("tls_ca_file: /nonexistent\npassword: hunter2\n")
    res, _ = _usage(tmp_path, pca_model, "--scheduler", "tls://127.0.0.1:1", "--security-file", sec)
    assert_fails(res, EXIT_USAGE, str(sec), "password")


def test_security_file_naming_a_missing_certificate(tmp_path, pca_model):
    sec = tmp_path / "sec.yaml"
    sec.write_text(f"tls_ca_file: {tmp_path / 'ca.pem'}\n")
    res, _ = _usage(tmp_path, pca_model, "--scheduler", "tls://127.0.0.1:1", "--security-file", sec)
    assert_fails(res, EXIT_USAGE, str(sec), "tls_ca_file")


def test_security_file_with_a_tcp_scheduler(tmp_path, pca_model):
    sec = tmp_path / "sec.yaml"
    sec.write_text("require_encryption: true\n")
    res, _ = _usage(tmp_path, pca_model, "--scheduler", "tcp://127.0.0.1:1", "--security-file", sec)
    assert_fails(res, EXIT_USAGE, str(sec), "tls://")
