"""``data.source: sdss``: the MPA-JHU catalogue and real SDSS spectra on the universe's grid (format fixtures)."""

from __future__ import annotations

import numpy as np
import pytest

from specdenoise.config import parse_params
from specdenoise.errors import DataError
from survey.survey_fixtures import write_mpajhu, write_spec_lite


def _sdss_params(tmp_path, **extra):
    data = {"source": "sdss", "sdss_dir": str(tmp_path / "spectra"), "mpajhu_dir": str(tmp_path / "mpa"), **extra}
    return parse_params({"data": data})


def test_sdss_source_catalogue_and_observed(tmp_path):
    from specdenoise.data.preprocess import preprocess
    from specdenoise.sources.observe import sdss_loglam
    from specdenoise.sources.sdss import build_catalogue, observe_sdss

    write_mpajhu(tmp_path / "mpa")
    p = _sdss_params(tmp_path)
    cat = build_catalogue(p.data)
    assert len(cat) == 5
    # spectra for three of them (a real SDSS spectrum relabelled)
    for r in cat.iloc[:3].itertuples():
        write_spec_lite(
            tmp_path / "spectra" / f"spec-{r.plate:04d}-{r.mjd:05d}-{r.fiber:04d}.fits", r.plate, r.mjd, r.fiber, r.z
        )
    with pytest.raises(DataError, match=r"2 of 5 spectra missing .*download-sdss"):
        observe_sdss(cat, p.data)
    p2 = _sdss_params(tmp_path, require_spectra=True)
    cat2 = build_catalogue(p2.data)
    assert cat2["id"].tolist() == cat["id"].tolist()[:3]
    obs = observe_sdss(cat2, p2.data)
    loglam = sdss_loglam()
    assert obs["flux"].shape == (3, len(loglam)) and obs["id"].tolist() == cat2["id"].tolist()
    np.testing.assert_array_equal(obs["truth"], obs["flux"])
    # flux conserved by the resampling: mean flux density over 5000-9000 A agrees with the file's
    from specdenoise.survey.readers import read_spectra

    (s,) = read_spectra(tmp_path / "spectra" / f"spec-{cat2.plate[0]:04d}-{cat2.mjd[0]:05d}-{cat2.fiber[0]:04d}.fits")
    w = 10**loglam
    sel = (w > 5000) & (w < 9000) & (obs["ivar"][0] > 0)
    band = (s.wave > 5000) & (s.wave < 9000) & (s.ivar > 0)
    assert np.mean(obs["flux"][0][sel]) == pytest.approx(np.mean(s.flux[band]), rel=0.01)
    # blue edge: grid starts at 3800 A, NGC3522 at 3825 A (air) -> uncovered pixels masked
    assert (obs["ivar"][0][w < 3820] == 0).all()
    # the existing preprocess stage takes it as it is
    pre = preprocess(obs, p.preprocess)
    assert pre["flux"].shape == (3, p.preprocess.n_pix) and np.isfinite(pre["flux"]).all()
