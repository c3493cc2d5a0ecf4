"""The survey commands through the CLI: `data read`, and `data universe/select/observe` with ``data.source: sdss``."""

from __future__ import annotations

import numpy as np

from survey.survey_fixtures import mpajhu_rows, ppxf_sdss_file, write_mpajhu, write_spec_lite


def test_cli_read(tmp_path):
    from typer.testing import CliRunner

    from specdenoise.cli import app

    res = CliRunner().invoke(
        app, ["data", "read", str(ppxf_sdss_file()), str(ppxf_sdss_file("NGC3073_SDSS_DR18.fits"))]
    )
    assert res.exit_code == 0, res.output
    lines = res.stdout.strip().splitlines()
    assert len(lines) == 2 and lines[0].startswith("sdss-2488-54149-0001\tspec\tz=0.00402")


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
    res = runner.invoke(
        app,
        [
            "data",
            "select",
            "-p",
            str(pfile),
            "--catalogue",
            str(tmp_path / "u.parquet"),
            "--out",
            str(tmp_path / "s.parquet"),
            "--report",
            str(tmp_path / "sel.json"),
        ],
    )
    assert res.exit_code == 0, res.output
    sample = load_table(tmp_path / "s.parquet")
    for r in sample.itertuples():
        write_spec_lite(
            tmp_path / "spectra" / f"spec-{r.plate:04d}-{r.mjd:05d}-{r.fiber:04d}.fits", r.plate, r.mjd, r.fiber, r.z
        )
    res = runner.invoke(
        app,
        [
            "data",
            "observe",
            "-p",
            str(pfile),
            "--sample",
            str(tmp_path / "s.parquet"),
            "--out",
            str(tmp_path / "obs.npz"),
        ],
    )
    assert res.exit_code == 0, res.output
    obs = load_npz(tmp_path / "obs.npz", required=("loglam", "flux", "ivar", "truth", "z", "id", "split"))
    assert obs["flux"].shape[0] == len(sample) and set(obs["split"]) <= {"train", "test"}
    assert obs["id"].tolist() == sample["id"].tolist()


def test_cli_read_bad_files_exit_3_alone_1_in_a_batch(tmp_path):
    from faults.harness import assert_fails, cli

    bad = tmp_path / "bad.fits"
    bad.write_text("not FITS\n")
    assert_fails(cli("data", "read", bad), 3, "bad.fits")
    res = cli("data", "read", bad, ppxf_sdss_file())
    assert res.code == 1 and "sdss-2488-54149-0001" in res.stdout and "bad.fits" in res.stderr
    assert "Traceback" not in res.stderr
