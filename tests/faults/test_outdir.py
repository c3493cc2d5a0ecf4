"""Fault cases of the ``denoise`` output folder: unusable --out, outputs that would replace inputs,
the run lock, and markers that are folders. Each: exit status, one line naming the culprit, no
traceback, nothing written, inputs and earlier outputs unchanged."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys

from tests.faults import survey_cases
from tests.faults.harness import assert_fails, cli, fingerprint
from tests.faults.survey_cases import good_spec

from specdenoise.errors import EXIT_DATA, EXIT_OK, EXIT_USAGE
from specdenoise.survey.outdir import LOCK_NAME

pca_model = survey_cases.pca_model  # the module's fixture


def _denoise(inp, out, model, cwd):
    return cli("denoise", inp, "--model", model, "--out", out, "--workers", "0", cwd=cwd)


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_out_under_proc(tmp_path, pca_model):
    f = good_spec(tmp_path / "in" / "a.fits")
    before = fingerprint(tmp_path)
    assert_fails(_denoise(f, "/proc/specdenoise-out", pca_model, tmp_path), EXIT_USAGE, "/proc/specdenoise-out")
    assert fingerprint(tmp_path) == before


def test_out_under_sys(tmp_path, pca_model):
    f = good_spec(tmp_path / "in" / "a.fits")
    assert_fails(_denoise(f, "/sys/kernel/x", pca_model, tmp_path), EXIT_USAGE, "/sys/kernel/x", "system folder")


def test_out_is_an_existing_file(tmp_path, pca_model):
    f = good_spec(tmp_path / "in" / "a.fits")
    out = tmp_path / "results.txt"
    out.write_text("earlier results\n")
    before = fingerprint(tmp_path)
    assert_fails(_denoise(f, out, pca_model, tmp_path), EXIT_USAGE, str(out), "not a folder")
    assert fingerprint(tmp_path) == before


def test_out_is_a_symlink_loop(tmp_path, pca_model):
    f = good_spec(tmp_path / "in" / "a.fits")
    (tmp_path / "loop1").symlink_to(tmp_path / "loop2")
    (tmp_path / "loop2").symlink_to(tmp_path / "loop1")
    assert_fails(_denoise(f, tmp_path / "loop1", pca_model, tmp_path), EXIT_USAGE, str(tmp_path / "loop1"))
    assert_fails(_denoise(f, tmp_path / "loop1" / "sub", pca_model, tmp_path), EXIT_USAGE, "loop1")


def test_out_is_a_dangling_symlink(tmp_path, pca_model):
    f = good_spec(tmp_path / "in" / "a.fits")
    (tmp_path / "gone").symlink_to(tmp_path / "nowhere")
    assert_fails(_denoise(f, tmp_path / "gone", pca_model, tmp_path), EXIT_USAGE, str(tmp_path / "gone"))
    assert not (tmp_path / "nowhere").exists()


def test_out_below_a_file_cannot_be_created(tmp_path, pca_model):
    f = good_spec(tmp_path / "in" / "a.fits")
    (tmp_path / "plain").write_text("x")
    out = tmp_path / "plain" / "out"
    assert_fails(_denoise(f, out, pca_model, tmp_path), EXIT_USAGE, str(out), "cannot create")


def test_output_would_replace_an_input(tmp_path, pca_model):
    # a.fits's output would be a.denoised.fits: that name is taken by another input
    folder = tmp_path / "in"
    a = good_spec(folder / "a.fits")
    victim = good_spec(folder / "a.denoised.fits", fiber=2)
    before = fingerprint(tmp_path)
    res = cli("denoise", a, victim, "--model", pca_model, "--out", folder, "--workers", "0", cwd=tmp_path)
    assert_fails(res, EXIT_USAGE, str(victim), "output would take")
    assert fingerprint(tmp_path) == before


def test_out_may_be_the_input_folder_when_nothing_collides(tmp_path, pca_model):
    a = good_spec(tmp_path / "in" / "a.fits")
    before = fingerprint(a)
    res = _denoise(a, tmp_path / "in", pca_model, tmp_path)
    assert res.code == EXIT_OK, res.stderr
    assert (tmp_path / "in" / "a.denoised.fits").exists() and fingerprint(a) == before


def test_second_run_into_a_locked_folder_stops(tmp_path, pca_model):
    f = good_spec(tmp_path / "in" / "a.fits")
    out = tmp_path / "out"
    assert _denoise(f, out, pca_model, tmp_path).code == EXIT_OK
    holder = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        (out / LOCK_NAME).write_text(json.dumps({"pid": holder.pid, "host": socket.gethostname()}))
        good_spec(tmp_path / "in" / "b.fits", fiber=2)
        before = fingerprint(tmp_path)
        res = _denoise(tmp_path / "in" / "b.fits", out, pca_model, tmp_path)
        assert_fails(res, EXIT_USAGE, str(out / LOCK_NAME), f"pid {holder.pid}")
        assert fingerprint(tmp_path) == before  # no output, summary.json of the first run kept
    finally:
        holder.kill()
        holder.wait()


def test_lock_of_another_host_is_never_broken(tmp_path, pca_model):
    f = good_spec(tmp_path / "in" / "a.fits")
    out = tmp_path / "out"
    out.mkdir()
    (out / LOCK_NAME).write_text(json.dumps({"pid": _dead_pid(), "host": "elsewhere.example"}))
    before = fingerprint(tmp_path)
    assert_fails(_denoise(f, out, pca_model, tmp_path), EXIT_USAGE, str(out / LOCK_NAME), "elsewhere.example")
    assert fingerprint(tmp_path) == before


def test_stale_lock_of_a_dead_process_is_taken_over(tmp_path, pca_model):
    f = good_spec(tmp_path / "in" / "a.fits")
    out = tmp_path / "out"
    out.mkdir()
    dead = _dead_pid()
    (out / LOCK_NAME).write_text(json.dumps({"pid": dead, "host": socket.gethostname()}))
    res = _denoise(f, out, pca_model, tmp_path)
    assert res.code == EXIT_OK, res.stderr
    assert f"taking over the lock of pid {dead}" in res.stderr
    assert not (out / LOCK_NAME).exists()  # released at the end
    assert json.loads((out / "summary.json").read_text())["n_ok"] == 1


def test_lock_file_that_is_a_folder(tmp_path, pca_model):
    f = good_spec(tmp_path / "in" / "a.fits")
    (tmp_path / "out" / LOCK_NAME).mkdir(parents=True)
    before = fingerprint(tmp_path)
    assert_fails(_denoise(f, tmp_path / "out", pca_model, tmp_path), EXIT_DATA, LOCK_NAME, "folder")
    assert fingerprint(tmp_path) == before


def test_summary_json_that_is_a_folder(tmp_path, pca_model):
    f = good_spec(tmp_path / "in" / "a.fits")
    (tmp_path / "out" / "summary.json").mkdir(parents=True)
    before = fingerprint(tmp_path)
    assert_fails(_denoise(f, tmp_path / "out", pca_model, tmp_path), EXIT_DATA, str(tmp_path / "out" / "summary.json"))
    assert fingerprint(tmp_path) == before


def test_done_marker_that_is_a_folder(tmp_path, pca_model):
    f = good_spec(tmp_path / "in" / "a.fits")
    (tmp_path / "out" / "a.done.json").mkdir(parents=True)
    before = fingerprint(tmp_path)
    assert_fails(_denoise(f, tmp_path / "out", pca_model, tmp_path), EXIT_DATA, str(tmp_path / "out" / "a.done.json"))
    assert fingerprint(tmp_path) == before


def test_out_not_writable(tmp_path, pca_model):
    import pytest

    if os.geteuid() == 0:
        pytest.skip("root writes anywhere: permissions cannot make a folder unwritable")
    f = good_spec(tmp_path / "in" / "a.fits")
    out = tmp_path / "ro"
    out.mkdir()
    out.chmod(0o555)
    try:
        assert_fails(_denoise(f, out, pca_model, tmp_path), EXIT_USAGE, str(out), "not writable")
    finally:
        out.chmod(0o755)


def test_concurrent_run_into_the_same_folder_is_refused(tmp_path, pca_model):
    import signal
    import time

    files = [good_spec(tmp_path / "in" / f"f{k}.fits", fiber=k + 1) for k in range(3)]
    out = tmp_path / "out"
    exe = os.path.join(os.path.dirname(sys.executable), "specdenoise")
    first = subprocess.Popen(
        [exe, "denoise", *map(str, files), "--model", str(pca_model), "--out", str(out), "--workers", "0"],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.time() + 120
        while not (out / LOCK_NAME).exists() and first.poll() is None and time.time() < deadline:
            time.sleep(0.02)
        first.send_signal(signal.SIGSTOP)  # hold the first run inside its locked section
        assert (out / LOCK_NAME).exists(), first.communicate()
        res = _denoise(files[0], out, pca_model, tmp_path)
        assert_fails(res, EXIT_USAGE, str(out / LOCK_NAME), f"pid {first.pid}")
    finally:
        first.send_signal(signal.SIGCONT)
    _, err = first.communicate(timeout=120)
    assert first.returncode == EXIT_OK, err
    summary = json.loads((out / "summary.json").read_text())
    assert summary["n_ok"] == 3 and summary["n_inputs"] == 3  # the first run's summary, not replaced
    assert not (out / LOCK_NAME).exists()


def test_failed_run_releases_the_lock_and_writes_nothing(tmp_path):
    f = good_spec(tmp_path / "in" / "a.fits")
    out = tmp_path / "out"
    res = _denoise(f, out, tmp_path / "no-such-model", tmp_path)
    assert_fails(res, EXIT_DATA, str(tmp_path / "no-such-model"))
    assert not out.exists()  # no lock, no summary, no output, not even the folder it made
