"""E-MILES templates: without registry access the download fails with the one error the test fixture skips on."""

from __future__ import annotations

import pytest

from conftest import emiles_download_failed
from specdenoise.errors import DataError
from specdenoise.physics.templates import build_emiles


def test_unreachable_registry_is_a_named_download_error(tmp_path, monkeypatch):
    # an index URL where nothing listens: the download cannot succeed
    monkeypatch.setenv("SPECDENOISE_INDEX_URL", "http://127.0.0.1:9/simple")
    out = tmp_path / "emiles.npz"
    with pytest.raises(DataError, match=r"ppxf==8\.2\.6: cannot download the source distribution") as err:
        build_emiles(out)
    assert emiles_download_failed(err.value)
    assert not out.exists() and not out.with_suffix(".json").exists()


def test_other_errors_are_not_download_failures():
    assert not emiles_download_failed(DataError("ppxf==8.2.6: expected 150 E-MILES spectra, found 149"))
    assert not emiles_download_failed(OSError("ppxf==8.2.6: cannot download the source distribution"))
