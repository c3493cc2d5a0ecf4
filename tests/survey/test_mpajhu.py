"""The MPA-JHU catalogue reader on format fixtures."""

from __future__ import annotations

import numpy as np
import pytest

from specdenoise.errors import DataError
from specdenoise.survey.readers.mpajhu import parent_sample, read_mpajhu
from survey.survey_fixtures import mpajhu_rows, write_mpajhu


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
