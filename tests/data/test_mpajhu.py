"""MPA-JHU catalogue reader and the ``data.source: sdss`` stages on format fixtures."""

from __future__ import annotations

import numpy as np
import pytest
from survey_fixtures import mpajhu_rows, write_mpajhu, write_spec_lite

from specdenoise.config import parse_params
from specdenoise.errors import DataError
from specdenoise.survey.readers.mpajhu import parent_sample, read_mpajhu


def test_join_columns_classes_and_bad_values(tmp_path):
    write_mpajhu(tmp_path)
    df = read_mpajhu(tmp_path)
    rows = mpajhu_rows()
    assert len(df) == len(rows)
    assert df["id"].tolist()[:2] == ["sdss-0266-51602-0001", "sdss-0266-51602-0002"]
    np.testing.assert_allclose(df["z"], [r["z"] for r in rows], rtol=1e-6)
    np.testing.assert_allclose(df["Halpha_flux_meas"], [r["ha"] for r in rows])
    np.testing.assert_allclose(df["NII_6583_flux_meas"], [r["nii"] for r in rows])  # NII_6584 -> NII_6583
    np.testing.assert_allclose(df["Hbeta_flux_err"], [r["err"] for r in rows])
    assert (df["Halpha_flux"] == df["Halpha_flux_meas"]).all()  # the reference flux for real data
    assert df["class"].astype(str).tolist() == [r["cls"] for r in rows]
    # -1 mass and -9999 SFR become NaN; the rest keep their values
    assert np.isnan(df.loc[3, "log_mass"]) and np.isnan(df.loc[3, "log_sfr"]) and np.isnan(df.loc[3, "log_ssfr"])
    assert df.loc[0, "log_mass"] == pytest.approx(10.1) and df.loc[0, "log_sfr_p84"] == pytest.approx(0.4)
    assert df.loc[0, "log_ssfr"] == pytest.approx(0.3 - 10.1, abs=1e-5)
    # a -1 flux error flags a failed fit: flux and error NaN
    assert df["OIII_4363_flux_err"].isna().all() and df["OIII_4363_flux_meas"].isna().all()
    assert df.attrs["lick_source"] == "gal_indx"
    assert df["lick_hdelta_a_meas"].tolist() == pytest.approx([r["hda"] for r in rows])


def test_without_gal_indx_uses_gal_line_absorption(tmp_path):
    write_mpajhu(tmp_path, with_indx=False)
    df = read_mpajhu(tmp_path)
    assert df.attrs["lick_source"] == "gal_line REQW-EQW"
    # fixture: REQW -1, EQW -2 (errors 0.5 each) -> stellar EW 1.0 +- 0.71: S/N 1.4, not absorption
    assert df["lick_hdelta_a_meas"].iloc[0] == pytest.approx(1.0)
    assert df["lick_hdelta_a_err"].iloc[0] == pytest.approx(np.hypot(0.5, 0.5))
    assert (df["class"].astype(str) == "absorption").sum() == 0


def test_parent_sample_cuts(tmp_path):
    write_mpajhu(tmp_path)
    pool = parent_sample(read_mpajhu(tmp_path), 0.024, 0.05)
    assert len(pool) == 5 and "sdss-0268-51633-0101" not in pool["id"].tolist()


def test_missing_file_and_column_and_row_mismatch(tmp_path):
    with pytest.raises(DataError, match="MPA-JHU folder not found"):
        read_mpajhu(tmp_path / "none")
    write_mpajhu(tmp_path)
    (tmp_path / "totlgm_dr7_v5_2b.fit.gz").unlink()
    with pytest.raises(DataError, match="missing MPA-JHU catalogue.*totlgm"):
        read_mpajhu(tmp_path)
    d2 = tmp_path / "b"
    write_mpajhu(d2, drop=("H_BETA_FLUX_ERR",))
    with pytest.raises(DataError, match=r"gal_line_dr7_v5_2\.fit\.gz: missing column\(s\) H_BETA_FLUX_ERR"):
        read_mpajhu(d2)
    d3 = tmp_path / "c"
    write_mpajhu(d3)
    write_mpajhu(d3 / "short", rows=mpajhu_rows()[:3])
    (d3 / "short" / "gal_totsfr_dr7_v5_2.fits.gz").replace(d3 / "gal_totsfr_dr7_v5_2.fits.gz")
    with pytest.raises(DataError, match="3 rows but gal_info has 6"):
        read_mpajhu(d3)


def _sdss_params(tmp_path, **extra):
    data = {"source": "sdss", "sdss_dir": str(tmp_path / "spectra"), "mpajhu_dir": str(tmp_path / "mpa"), **extra}
    return parse_params({"data": data})


def test_sdss_source_catalogue_and_observed(tmp_path):
    from specdenoise.sources.observe import sdss_loglam
    from specdenoise.data.preprocess import preprocess
    from specdenoise.sources.sdss import build_catalogue, observe_sdss

    write_mpajhu(tmp_path / "mpa")
    p = _sdss_params(tmp_path)
    cat = build_catalogue(p.data)
    assert len(cat) == 5
    # spectra for three of them (a real SDSS spectrum relabelled)
    for r in cat.iloc[:3].itertuples():
        write_spec_lite(tmp_path / "spectra" / f"spec-{r.plate:04d}-{r.mjd:05d}-{r.fiber:04d}.fits", r.plate, r.mjd, r.fiber, r.z)
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


def test_sdss_source_cli_stages(tmp_path, monkeypatch):
    """`data universe` -> `data select` -> `data observe` with data.source sdss, through the CLI."""
    import yaml
    from typer.testing import CliRunner

    from specdenoise.cli import app
    from specdenoise.io import load_npz, load_table

    rows = []
    rng = np.random.default_rng(0)
    base = mpajhu_rows()[0]
    for i in range(40):  # 40 star-forming galaxies with H-alpha fluxes over the selection range
        rows.append(dict(base, f=i + 1, z=0.03 + 0.0004 * i, ha=float(10 ** rng.uniform(0.3, 3.3)), sub=""))
    write_mpajhu(tmp_path / "mpa", rows=rows)
    params = {
        "data": {"source": "sdss", "sdss_dir": str(tmp_path / "spectra"), "mpajhu_dir": str(tmp_path / "mpa")},
        "select": {"n_bins": 4, "log_flux_min": 0.2, "log_flux_max": 3.4, "per_bin": 3, "n_test": 2},
    }
    pfile = tmp_path / "params.yaml"
    pfile.write_text(yaml.safe_dump(params))
    runner = CliRunner()
    res = runner.invoke(app, ["data", "universe", "-p", str(pfile), "--out", str(tmp_path / "u.parquet")])
    assert res.exit_code == 0, res.output
    assert "39 MPA-JHU galaxies (source sdss" in res.stdout  # the fixture flags the last z_warning
    res = runner.invoke(app, ["data", "select", "-p", str(pfile), "--catalogue", str(tmp_path / "u.parquet"), "--out", str(tmp_path / "s.parquet"), "--report", str(tmp_path / "sel.json")])
    assert res.exit_code == 0, res.output
    sample = load_table(tmp_path / "s.parquet")
    for r in sample.itertuples():
        write_spec_lite(tmp_path / "spectra" / f"spec-{r.plate:04d}-{r.mjd:05d}-{r.fiber:04d}.fits", r.plate, r.mjd, r.fiber, r.z)
    res = runner.invoke(app, ["data", "observe", "-p", str(pfile), "--sample", str(tmp_path / "s.parquet"), "--out", str(tmp_path / "obs.npz")])
    assert res.exit_code == 0, res.output
    obs = load_npz(tmp_path / "obs.npz", required=("loglam", "flux", "ivar", "truth", "z", "id", "split"))
    assert obs["flux"].shape[0] == len(sample) and set(obs["split"]) <= {"train", "test"}
    assert obs["id"].tolist() == sample["id"].tolist()
