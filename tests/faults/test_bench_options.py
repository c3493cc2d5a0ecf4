"""Bad sizes given to ``bench posterior``: a negative table size is one ``error:`` line naming the
option, exit 2, no report written, nothing else touched."""

from __future__ import annotations

import pytest
from tests.faults.harness import assert_fails, cli, fingerprint

from specdenoise.errors import EXIT_USAGE


@pytest.mark.parametrize("option, value", [("--per-class", "-1"), ("--n-exact", "-5"), ("--n-library", "-1")])
def test_bench_posterior_refuses_a_negative_size(tmp_path, option, value):
    out, md = tmp_path / "posterior.json", tmp_path / "p.md"
    before = fingerprint(tmp_path)
    res = cli("bench", "posterior", option, value, "--out", out, "--md", md)
    assert_fails(res, EXIT_USAGE, option)
    assert not out.exists() and not md.exists() and fingerprint(tmp_path) == before
